{#- Where each layer goes. The models name a layer (`+schema: marts` / `staging` in
    dbt_project.yml) and these macros turn it into a schema from the vars, the same whether this
    project runs on its own or is installed as a package (dbt uses a package's own
    generate_schema_name for the package's models). -#}

{% macro instamojo_marts_schema() -%}
  {{- return(var('instamojo_marts_schema', none) or target.schema) -}}
{%- endmacro %}

{% macro instamojo_staging_schema() -%}
  {{- return(var('instamojo_staging_schema', none) or (instamojo_marts_schema() ~ '_staging')) -}}
{%- endmacro %}

{% macro generate_schema_name(custom_schema_name, node) -%}
  {%- if custom_schema_name is none -%}
    {{ target.schema }}
  {%- elif custom_schema_name | trim == 'marts' -%}
    {{ instamojo_marts_schema() }}
  {%- elif custom_schema_name | trim == 'staging' -%}
    {{ instamojo_staging_schema() }}
  {%- else -%}
    {{ custom_schema_name | trim }}
  {%- endif -%}
{%- endmacro %}
