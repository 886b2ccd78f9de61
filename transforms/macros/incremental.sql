{#- Incremental by merchant.

    Every row of every model belongs to one merchant, and no model mixes merchants (every join is
    on merchant; the settlement calendar is the same for all). So a merchant's rows can be
    recomputed from that merchant's raw rows alone: a run deletes the rows of the merchants to
    rebuild (pre-hook, inside the model's transaction) and appends their recomputed rows, reading
    only those merchants from its inputs. Which merchants: the rows of the table
    `transforms_rebuild_merchants` in the staging schema, which the pipeline writes before the run
    (transforms/dbt.py); when it does not exist (dbt run by hand, an analyst's project), every
    merchant. A model whose table does not exist yet, or `--full-refresh`, builds every merchant.
-#}

{% macro rebuild_merchants_relation() -%}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {{- return(adapter.get_relation(database=target.database, schema=instamojo_staging_schema(),
                                  identifier='transforms_rebuild_merchants')) -}}
{%- endmacro %}

{#- A condition on `column` (default merchant) selecting the merchants this model rebuilds. -#}
{% macro rebuilt_merchants_condition(column='merchant') -%}
  {%- set listed = rebuild_merchants_relation() if is_incremental() else none -%}
  {%- if listed is not none -%}
    {{ column }} IN (SELECT merchant FROM {{ listed }})
  {%- else -%}
    1 = 1
  {%- endif -%}
{%- endmacro %}

{#- An input relation, restricted to the merchants this model rebuilds. -#}
{% macro rebuilt(relation) -%}
  {%- if is_incremental() -%}
    (SELECT * FROM {{ relation }} WHERE {{ rebuilt_merchants_condition() }})
  {%- else -%}
    {{ relation }}
  {%- endif -%}
{%- endmacro %}

{% macro delete_rebuilt_merchants() -%}
  {%- if is_incremental() -%}
    DELETE FROM {{ this }} WHERE {{ rebuilt_merchants_condition() }}
  {%- endif -%}
{%- endmacro %}
