-- int_customer_rfm_scores
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_customers, cfg_rfm_scoring (config rfm.scoring and rfm.breakpoints: one row per
--         score with its method, and one row per breakpoint); $rfm_bins.
-- R, F and M are scored 1..bins, each by the method the config names for it:
--   quantile     bins of the customer's rank with ties sharing it: score = 1 + floor(bins *
--                (rank - 1) / n) with rank(), so equal values share a score (a score never
--                depends on the customer's id). Many equal values (half the customers with one
--                order) leave some scores empty.
--   rank         the same bins of a rank without ties: row_number() ordered by the measure,
--                then by md5(customer_id) -- stable across versions and reruns. Every score
--                holds n / bins customers; equal values may get neighbouring scores.
--   breakpoints  fixed thresholds, as the R package `rfm` allows: score = 1 + the number of
--                breakpoints the value reaches (F: orders >= b; M: net revenue >= b; R: days
--                since the last purchase <= b, so recent buyers score high).
-- Measures: R = days since the last purchase (reversed: the most recent score highest);
-- F = purchase orders; M = net revenue. rfm_cell = the three digits.

with customers as (

    select * from int_customers

),

scoring as (

    select * from cfg_rfm_scoring

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

methods as (

    select distinct scoring.score_name, scoring.method
    from scoring

),

ranked as (

    select
        measures.customer_id,
        measures.score_name,
        measures.measure,
        methods.method,
        rank() over (partition by measures.score_name order by measures.measure) as tied_rank,
        row_number() over (
            partition by measures.score_name
            order by measures.measure, md5(measures.customer_id::varchar)
        ) as row_rank,
        count(*) over (partition by measures.score_name) as customers

    from measures
    inner join methods using (score_name)

),

reached as (

    -- breakpoints reached, for the scores scored by breakpoints (oriented like the measure)
    select
        ranked.customer_id,
        ranked.score_name,
        count(scoring.bound) as breakpoints_reached

    from ranked
    inner join scoring
        on scoring.score_name = ranked.score_name
        and ranked.measure >= (case when ranked.score_name = 'r' then -scoring.bound else scoring.bound end)
    where ranked.method = 'breakpoints'
    group by ranked.customer_id, ranked.score_name

),

binned as (

    select
        ranked.customer_id,
        ranked.score_name,
        case ranked.method
            when 'quantile' then 1 + floor($rfm_bins * (ranked.tied_rank - 1) / ranked.customers)
            when 'rank' then 1 + floor($rfm_bins * (ranked.row_rank - 1) / ranked.customers)
            else 1 + coalesce(reached.breakpoints_reached, 0)
        end::integer as score

    from ranked
    left join reached using (customer_id, score_name)

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
