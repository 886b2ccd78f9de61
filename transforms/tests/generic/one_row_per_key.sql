{#- Must return zero rows: no key (one or more columns) appears twice or has a NULL part. -#}
{% test one_row_per_key(model, columns) %}
SELECT {{ columns | join(', ') }}, COUNT(*) AS copies
FROM {{ model }}
GROUP BY {{ columns | join(', ') }}
HAVING COUNT(*) > 1 OR {% for c in columns %}{{ c }} IS NULL{% if not loop.last %} OR {% endif %}{% endfor %}
{% endtest %}
