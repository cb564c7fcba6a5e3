-- int_customer_rfm_scores_daily
-- Grain: one row per day and customer scored that day (int_customer_rfm_measures: the
--        snapshot date, with all three scores, and each lookback day, with r and f).
-- Inputs: int_customer_rfm_measures, cfg_rfm_scoring (config rfm.scoring and rfm.breakpoints:
--         one row per score with its method, and one row per breakpoint); $rfm_bins.
-- R, F and M are scored 1..bins among the customers of the same day, each by the method the
-- config names for it:
--   quantile     bins of the customer's rank with ties sharing it: score = 1 + floor(bins *
--                (rank - 1) / n), where rank = 1 + the customers of the day with a lower
--                measure (SQL's rank()), so equal values share a score (a score never depends
--                on the customer's id). Many equal values (half the customers with one order)
--                leave some scores empty. The rank is counted per distinct value of the day
--                (a few thousand days of recency, a few order counts) and joined back, instead
--                of sorting every customer-day.
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

    -- one row: each score's method
    select
        any_value(scoring.method) filter (where scoring.score_name = 'r') as r_method,
        any_value(scoring.method) filter (where scoring.score_name = 'f') as f_method,
        any_value(scoring.method) filter (where scoring.score_name = 'm') as m_method
    from scoring

),

breakpoints as (

    -- one row: each score's breakpoints, oriented like its measure (R's are days: reversed)
    select
        list(-scoring.bound) filter (
            where scoring.score_name = 'r' and scoring.method = 'breakpoints'
        ) as r_bounds,
        list(scoring.bound) filter (
            where scoring.score_name = 'f' and scoring.method = 'breakpoints'
        ) as f_bounds,
        list(scoring.bound) filter (
            where scoring.score_name = 'm' and scoring.method = 'breakpoints'
        ) as m_bounds
    from scoring

),

day_sizes as (

    select measures.as_of, count(*) as customers
    from measures
    group by measures.as_of

),

r_values as (

    select measures.as_of, measures.r_measure as measure, count(*) as holders
    from measures
    group by measures.as_of, measures.r_measure

),

f_values as (

    select measures.as_of, measures.f_measure as measure, count(*) as holders
    from measures
    group by measures.as_of, measures.f_measure

),

m_values as (

    select measures.as_of, measures.m_measure as measure, count(*) as holders
    from measures
    where measures.is_snapshot
    group by measures.as_of, measures.m_measure

),

r_ranks as (

    -- rank() of each distinct value of the day: 1 + the customers holding a lower one
    select
        r_values.as_of,
        r_values.measure,
        1 + coalesce(sum(r_values.holders) over lower_values, 0)::bigint as tied_rank
    from r_values
    window lower_values as (
        partition by r_values.as_of
        order by r_values.measure
        rows between unbounded preceding and 1 preceding
    )

),

f_ranks as (

    -- rank() of each distinct value of the day: 1 + the customers holding a lower one
    select
        f_values.as_of,
        f_values.measure,
        1 + coalesce(sum(f_values.holders) over lower_values, 0)::bigint as tied_rank
    from f_values
    window lower_values as (
        partition by f_values.as_of
        order by f_values.measure
        rows between unbounded preceding and 1 preceding
    )

),

m_ranks as (

    -- rank() of each distinct value of the day: 1 + the customers holding a lower one
    select
        m_values.as_of,
        m_values.measure,
        1 + coalesce(sum(m_values.holders) over lower_values, 0)::bigint as tied_rank
    from m_values
    window lower_values as (
        partition by m_values.as_of
        order by m_values.measure
        rows between unbounded preceding and 1 preceding
    )

),

row_ranks as (

    -- ranks without ties, computed only when some score is scored by them (md5 for every row
    -- is costly)
    select
        measures.as_of,
        measures.customer_id,
        row_number() over (
            partition by measures.as_of
            order by measures.r_measure, md5(measures.customer_id::varchar)
        ) as r_row_rank,
        row_number() over (
            partition by measures.as_of
            order by measures.f_measure, md5(measures.customer_id::varchar)
        ) as f_row_rank,
        row_number() over (
            partition by measures.as_of
            order by measures.m_measure, md5(measures.customer_id::varchar)
        ) as m_row_rank
    from measures
    cross join methods
    where 'rank' in (methods.r_method, methods.f_method, methods.m_method)

),

scored as (

    select
        measures.as_of,
        measures.customer_id,
        case methods.r_method
            when 'quantile' then 1 + floor($rfm_bins * (r_ranks.tied_rank - 1) / day_sizes.customers)
            when 'rank' then 1 + floor($rfm_bins * (row_ranks.r_row_rank - 1) / day_sizes.customers)
            else 1 + coalesce(len(list_filter(breakpoints.r_bounds, lambda bound: measures.r_measure >= bound)), 0)
        end::integer as r_score,
        case methods.f_method
            when 'quantile' then 1 + floor($rfm_bins * (f_ranks.tied_rank - 1) / day_sizes.customers)
            when 'rank' then 1 + floor($rfm_bins * (row_ranks.f_row_rank - 1) / day_sizes.customers)
            else 1 + coalesce(len(list_filter(breakpoints.f_bounds, lambda bound: measures.f_measure >= bound)), 0)
        end::integer as f_score,
        case when measures.is_snapshot then
            case methods.m_method
                when 'quantile' then 1 + floor($rfm_bins * (m_ranks.tied_rank - 1) / day_sizes.customers)
                when 'rank' then 1 + floor($rfm_bins * (row_ranks.m_row_rank - 1) / day_sizes.customers)
                else 1 + coalesce(len(list_filter(breakpoints.m_bounds, lambda bound: measures.m_measure >= bound)), 0)
            end
        end::integer as m_score
    from measures
    cross join methods
    cross join breakpoints
    inner join day_sizes
        on measures.as_of = day_sizes.as_of
    inner join r_ranks
        on measures.as_of = r_ranks.as_of
        and measures.r_measure is not distinct from r_ranks.measure
    inner join f_ranks
        on measures.as_of = f_ranks.as_of
        and measures.f_measure is not distinct from f_ranks.measure
    left join m_ranks
        on measures.as_of = m_ranks.as_of
        and measures.m_measure is not distinct from m_ranks.measure
        and measures.is_snapshot
    left join row_ranks
        on measures.as_of = row_ranks.as_of
        and measures.customer_id = row_ranks.customer_id

),

final as (

    select
        scored.*,
        scored.r_score::varchar || scored.f_score::varchar || scored.m_score::varchar as rfm_cell
    from scored

)

select * from final
