-- int_customer_rfm_scores
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_customers; $rfm_bins.
-- R, F and M score three measures the same way: bins of the customer's rank (5 bins =
-- quintiles), score = 1 + floor(bins * (rank - 1) / n), with rank() so that equal values
-- share a score (a customer's score never depends on their id) and every rerun gives the
-- same scores. Measures: R = days since the last purchase, reversed (the most recent buyers
-- score highest); F = purchase orders; M = net revenue. rfm_cell = the three digits.

with customers as (

    select * from int_customers

),

measures as (

    -- one row per customer and score; each measure oriented so that higher earns a higher score
    select customers.customer_id, 'r' as score_name, -customers.recency_days as measure
    from customers
    union all
    select customers.customer_id, 'f' as score_name, customers.order_count as measure
    from customers
    union all
    select customers.customer_id, 'm' as score_name, customers.net_revenue as measure
    from customers

),

binned as (

    select
        measures.customer_id,
        measures.score_name,
        1 + floor(
            $rfm_bins * (rank() over (partition by measures.score_name order by measures.measure) - 1)
            / count(*) over (partition by measures.score_name)
        )::integer as score

    from measures

),

pivoted as (

    select
        binned.customer_id,
        any_value(binned.score) filter (where binned.score_name = 'r') as r_score,
        any_value(binned.score) filter (where binned.score_name = 'f') as f_score,
        any_value(binned.score) filter (where binned.score_name = 'm') as m_score

    from binned
    group by binned.customer_id

),

final as (

    select
        pivoted.*,
        pivoted.r_score::varchar || pivoted.f_score::varchar || pivoted.m_score::varchar as rfm_cell

    from pivoted

)

select * from final
