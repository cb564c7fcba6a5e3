-- int_customer_rfm_scores_daily
-- Grain: one row per day and customer scored that day (int_customer_rfm_measures: the
--        snapshot date, with all three scores, and each lookback day, with r and f).
-- Inputs: int_customer_rfm_measures, cfg_rfm_scoring (config rfm.scoring and rfm.breakpoints:
--         one row per score with its method, and one row per breakpoint); $rfm_bins.
-- R, F and M are scored 1..bins among the customers of the same day, each by the method the
-- config names for it:
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
-- rfm_cell = the three digits (null on a lookback day, which has no M score).

with measures as (

    select * from int_customer_rfm_measures

),

scoring as (

    select * from cfg_rfm_scoring

),

methods as (

    select distinct scoring.score_name, scoring.method
    from scoring

),

breakpoints as (

    -- each score's breakpoints, oriented like its measure (R's are days: reversed)
    select
        scoring.score_name,
        list(case when scoring.score_name = 'r' then -scoring.bound else scoring.bound end) as bounds
    from scoring
    where scoring.method = 'breakpoints'
    group by scoring.score_name

),

ranked as (

    select
        measures.as_of,
        measures.customer_id,
        measures.score_name,
        measures.measure,
        methods.method,
        rank() over by_measure as tied_rank,
        count(*) over (partition by measures.as_of, measures.score_name) as customers
    from measures
    inner join methods using (score_name)
    window by_measure as (
        partition by measures.as_of, measures.score_name order by measures.measure
    )

),

row_ranked as (

    -- a rank without ties, only where a score is scored by it (md5 for every row is costly)
    select
        ranked.as_of,
        ranked.customer_id,
        ranked.score_name,
        row_number() over (
            partition by ranked.as_of, ranked.score_name
            order by ranked.measure, md5(ranked.customer_id::varchar)
        ) as row_rank
    from ranked
    where ranked.method = 'rank'

),

reached as (

    -- breakpoints reached, for the scores scored by breakpoints
    select
        ranked.as_of,
        ranked.customer_id,
        ranked.score_name,
        len(list_filter(breakpoints.bounds, lambda bound: ranked.measure >= bound)) as breakpoints_reached
    from ranked
    inner join breakpoints using (score_name)

),

binned as (

    select
        ranked.as_of,
        ranked.customer_id,
        ranked.score_name,
        case ranked.method
            when 'quantile' then 1 + floor($rfm_bins * (ranked.tied_rank - 1) / ranked.customers)
            when 'rank' then 1 + floor($rfm_bins * (row_ranked.row_rank - 1) / ranked.customers)
            else 1 + coalesce(reached.breakpoints_reached, 0)
        end::integer as score
    from ranked
    left join row_ranked using (as_of, customer_id, score_name)
    left join reached using (as_of, customer_id, score_name)

),

pivoted as (

    select
        binned.as_of,
        binned.customer_id,
        any_value(binned.score) filter (where binned.score_name = 'r') as r_score,
        any_value(binned.score) filter (where binned.score_name = 'f') as f_score,
        any_value(binned.score) filter (where binned.score_name = 'm') as m_score
    from binned
    group by binned.as_of, binned.customer_id

),

final as (

    select
        pivoted.*,
        pivoted.r_score::varchar || pivoted.f_score::varchar || pivoted.m_score::varchar as rfm_cell
    from pivoted

)

select * from final
