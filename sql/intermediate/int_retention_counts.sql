-- int_retention_counts
-- Grain: one row per retention period (annual: $retention_period_days; activity:
--        $active_days) -- the customers who bought in its earlier period, and those of them
--        who bought again in the last one.
-- Inputs: int_purchase_days; $snapshot_date, $retention_period_days, $active_days.
-- Counts only, so customer-disjoint parts add up to the whole: a sharded build computes this
-- per shard and sums the shards' rows (pipelines/transform/sharded.py, SUMMED). int_retention
-- turns the counts into rates.

with purchase_days as (

    select int_purchase_days.customer_id, int_purchase_days.purchase_date
    from int_purchase_days

),

periods as (

    select 'annual' as period, $retention_period_days::integer as period_days
    union all
    select 'activity' as period, $active_days::integer as period_days

),

bounds as (

    select
        periods.period,
        periods.period_days,
        $snapshot_date::date - periods.period_days as last_start,
        $snapshot_date::date - 2 * periods.period_days as base_start

    from periods

),

flags as (

    -- base: bought in the earlier period; retained: in the base and bought in the last one
    select
        bounds.period,
        purchase_days.customer_id,
        bool_or(purchase_days.purchase_date > bounds.base_start and purchase_days.purchase_date <= bounds.last_start) as in_base,
        bool_or(purchase_days.purchase_date > bounds.last_start) as in_last

    from purchase_days
    cross join bounds
    group by bounds.period, purchase_days.customer_id

),

counted as (

    select
        bounds.period,
        any_value(bounds.period_days) as period_days,
        count(*) filter (where flags.in_base) as base_customers,
        count(*) filter (where flags.in_base and flags.in_last) as retained_customers

    from bounds
    left join flags using (period)
    group by bounds.period

)

select * from counted
