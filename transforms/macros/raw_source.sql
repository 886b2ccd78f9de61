{#- A raw table as the models read it: `{{ instamojo_raw('payments') }}` is a subquery with every
    column the source declares for it (models/staging/_sources.yml) plus `<column>__v_text` for
    each money column (where dlt keeps a value it could not read as a number). A declared column
    the raw table lacks (an older sync, no bad value ever seen) reads as a typed NULL; a raw table
    that does not exist (the merchant never granted that scope) reads as an empty relation of the
    same shape. Restricted to the merchants the calling model rebuilds (see incremental.sql). -#}

{% macro instamojo_raw(table_name) -%}
  {%- set relation = source('instamojo', table_name) -%}
  {%- if not execute -%}
    {{ relation }}
  {%- else -%}
    {%- set declared = [] -%}
    {%- for node in graph.sources.values() if node.source_name == 'instamojo' and node.name == table_name -%}
      {%- for column in node.columns.values() -%}
        {%- do declared.append((column.name, column.data_type)) -%}
        {%- if column.data_type | lower == 'decimal(18,2)' -%}
          {%- do declared.append((column.name ~ '__v_text', 'TEXT')) -%}
        {%- endif -%}
      {%- endfor -%}
    {%- endfor -%}
    {%- if not declared -%}
      {{ exceptions.raise_compiler_error("source instamojo." ~ table_name ~ " declares no columns") }}
    {%- endif -%}
    {%- set existing = adapter.get_relation(database=relation.database, schema=relation.schema,
                                            identifier=relation.identifier) -%}
    {%- set present = [] -%}
    {%- if existing is not none -%}
      {%- for column in adapter.get_columns_in_relation(existing) -%}
        {%- do present.append(column.name | lower) -%}
      {%- endfor -%}
    {%- endif -%}
    (SELECT
    {%- for name, data_type in declared %}
        {% if name in present %}{{ name }}{% else %}CAST(NULL AS {{ data_type }}) AS {{ name }}{% endif %}{% if not loop.last %},{% endif %}
    {%- endfor %}
    {%- if existing is none %}
    WHERE 1 = 0)
    {%- else %}
    FROM {{ relation }}
    WHERE {{ rebuilt_merchants_condition() }})
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}
