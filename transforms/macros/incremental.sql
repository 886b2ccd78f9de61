{#- Incremental by merchant, and by raw table.

    Every row of every model belongs to one merchant, and no model mixes merchants (every join is
    on merchant; the settlement calendar is the same for all). So a merchant's rows can be
    recomputed from that merchant's raw rows alone: a run deletes the rows of the merchants to
    rebuild (pre-hook, inside the model's transaction) and appends their recomputed rows, reading
    only those merchants from its inputs. Which merchants: the rows of the table
    `transforms_rebuild_merchants` in the staging schema, which the pipeline writes before the run
    (transforms/dbt.py); when it does not exist (dbt run by hand, an analyst's project), every
    merchant. A model whose table does not exist yet, or `--full-refresh`, builds every merchant.

    Each listed row also names the raw table whose rows changed (`raw_table`; NULL: any or all of
    them). A model rebuilds a merchant only when a raw table it reads from, directly or through
    other models, changed for that merchant: with none of its inputs changed, its rows for the
    merchant would come out the same. This holds model by model down the graph, since a model's
    inputs read from a subset of its own raw tables. So a sync that brought a merchant new
    payments only leaves the six models that read only orders, nested payments or payouts alone
    (10 such merchants of 1,000 over 10 million payments: 3.8 s -> 3.2 s, docs/marts.md "Speed").
-#}

{% macro rebuild_merchants_relation() -%}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {{- return(adapter.get_relation(database=target.database, schema=instamojo_staging_schema(),
                                  identifier='transforms_rebuild_merchants')) -}}
{%- endmacro %}

{#- The raw tables (of source `instamojo`) the model being built reads from, directly or through
    other models, sorted. -#}
{% macro instamojo_upstream_raw_tables() -%}
  {%- set found = [] -%}
  {%- set seen = [] -%}
  {%- set pending = [model.unique_id] -%}
  {#- Jinja has no while loop: each pass takes one node off `pending` (the graph has a few dozen) -#}
  {%- for _ in range(graph.nodes | length + 1) if pending -%}
    {%- set node = graph.nodes.get(pending.pop()) -%}
    {%- for parent in (node.depends_on.nodes if node else []) if parent not in seen -%}
      {%- do seen.append(parent) -%}
      {%- if parent in graph.sources -%}
        {%- if graph.sources[parent].source_name == 'instamojo' -%}
          {%- do found.append(graph.sources[parent].name) -%}
        {%- endif -%}
      {%- else -%}
        {%- do pending.append(parent) -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endfor -%}
  {{- return(found | unique | sort) -}}
{%- endmacro %}

{#- A condition on `column` (default merchant) selecting the merchants this model rebuilds: those
    listed with a raw table the model reads from, or with none named. -#}
{% macro rebuilt_merchants_condition(column='merchant') -%}
  {%- set listed = rebuild_merchants_relation() if is_incremental() else none -%}
  {%- if listed is not none -%}
    {%- set tables = instamojo_upstream_raw_tables() -%}
    {{ column }} IN (SELECT merchant FROM {{ listed }} WHERE raw_table IS NULL
    {%- if tables %} OR raw_table IN ({% for t in tables %}'{{ t }}'{% if not loop.last %}, {% endif %}{% endfor %}){% endif %})
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

{#- The pre-hook of every model; a model whose rows are not any merchant's (the calendar) says
    so with `instamojo_by_merchant=false`. -#}
{% macro delete_rebuilt_merchants() -%}
  {%- if is_incremental() and config.get('instamojo_by_merchant', true) -%}
    DELETE FROM {{ this }} WHERE {{ rebuilt_merchants_condition() }}
  {%- endif -%}
{%- endmacro %}

{#- The end of a model's SELECT that keeps its table clustered by merchant, where that pays.

    DuckDB keeps min/max statistics per row group (about 122,880 rows) and skips the row groups
    a filter cannot match. A table written in merchant order therefore lets an incremental run
    read and delete only the row groups of the merchants it rebuilds, instead of scanning every
    merchant's rows for them (at 10 million payments, about eight times less work per model). An
    incremental run appends its merchants' rows in merchant order too, so the table stays
    clustered until the next full refresh. Postgres has no such statistics (it would need an
    index), so there the rows are written in whatever order the query produces them.
    Written by hand because dbt-duckdb's own `sorted_by` config applies to DuckLake tables only
    (it warns and ignores it for a plain DuckDB file). -#}
{% macro clustered_by_merchant() -%}
  {{- return(adapter.dispatch('clustered_by_merchant', 'instamojo_reconciliation')()) -}}
{%- endmacro %}

{% macro default__clustered_by_merchant() -%}{%- endmacro %}

{% macro duckdb__clustered_by_merchant() -%}
ORDER BY merchant
{%- endmacro %}

{#- The rows an incremental run appends, on DuckDB: a temporary view over the model's query.

    dbt-duckdb's incremental materialization first writes the model's rows into a temporary
    table, then reads its columns and copies the rows into the target. With a view in its place
    the query runs once, inside the INSERT (in the same transaction, after the pre-hook's
    DELETE, as the temporary table's query did), and the rows are written once. After 10 of
    1,000 merchants changed over 10 million payments: 4.2-4.3 s with the temporary tables,
    3.8-3.9 s with the views, interleaved. Everything else (the target's first build, a full
    refresh, the calendar's table, Postgres) goes to the adapter's own macro. This package's own
    definition of the macro the materialization calls, as with persist_docs (macros/persist_docs.sql). -#}
{% macro create_table_as(temporary, relation, compiled_code, language='sql', partitioned_by=none, sorted_by=none) -%}
  {%- if target.type == 'duckdb' and temporary and language == 'sql' and is_incremental() -%}
    create temporary view {{ relation.include(database=false, schema=false) }} as (
      {{ compiled_code }}
    );
  {%- elif target.type == 'duckdb' -%}
    {{ return(adapter.dispatch('create_table_as', 'dbt')(temporary, relation, compiled_code, language,
                                                        partitioned_by=partitioned_by, sorted_by=sorted_by)) }}
  {%- elif language == 'sql' -%}
    {{ return(adapter.dispatch('create_table_as', 'dbt')(temporary, relation, compiled_code)) }}
  {%- else -%}
    {{ return(adapter.dispatch('create_table_as', 'dbt')(temporary, relation, compiled_code, language)) }}
  {%- endif -%}
{%- endmacro %}
