{#- The final column list of a mart: every column its YAML declares, in that order, cast to the
    declared data_type. The YAML is the one declaration of a mart's columns (names, order, types,
    descriptions), so money is DECIMAL(18,2) on DuckDB and Postgres whatever the SQL computed. -#}
{% macro typed_columns(relation_alias=none) -%}
  {%- if execute and not model.columns -%}
    {{ exceptions.raise_compiler_error("model " ~ model.name ~ " declares no columns in its YAML") }}
  {%- endif -%}
  {%- for column in model.columns.values() %}
    CAST({% if relation_alias %}{{ relation_alias }}.{% endif %}{{ column.name }} AS {{ column.data_type }}) AS {{ column.name }}{% if not loop.last %},{% endif %}
  {%- endfor %}
{%- endmacro %}

{#- Settings as SQL literals (the pipeline passes them as vars from [transforms]). -#}
{% macro instamojo_timezone() -%}'Asia/Kolkata'{%- endmacro %}

{% macro instamojo_money_var(name) -%}
  {%- set value = var(name) | string -%}
  {%- if not modules.re.match('^[0-9]{1,16}([.][0-9]{1,2})?$', value) -%}
    {{ exceptions.raise_compiler_error("var " ~ name ~ " must be an amount such as 0.00, got " ~ value) }}
  {%- endif -%}
  CAST('{{ value }}' AS DECIMAL(18,2))
{%- endmacro %}

{% macro instamojo_as_of() -%}
  {%- set value = var('instamojo_as_of', none) -%}
  {%- if value is none or value == '' -%}
    CAST(NULL AS TIMESTAMPTZ)
  {%- else -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9:.]+([+-][0-9]{2}:?[0-9]{2}|Z)$', value | string) -%}
      {{ exceptions.raise_compiler_error("var instamojo_as_of must be an ISO date-time with a UTC offset, got " ~ value) }}
    {%- endif -%}
    CAST('{{ value }}' AS TIMESTAMPTZ)
  {%- endif -%}
{%- endmacro %}

{% macro instamojo_as_of_mode() -%}
  {%- set value = var('instamojo_as_of_mode', 'latest_sync') -%}
  {%- if value not in ('latest_sync', 'latest_activity') -%}
    {{ exceptions.raise_compiler_error("var instamojo_as_of_mode must be latest_sync or latest_activity, got " ~ value) }}
  {%- endif -%}
  '{{ value }}'
{%- endmacro %}

{#- The run's clock (UTC), one for every model of a run. -#}
{% macro instamojo_run_time() -%}
  CAST('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}+00:00' AS TIMESTAMPTZ)
{%- endmacro %}
