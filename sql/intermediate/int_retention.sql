-- int_retention
-- Grain: one row per snapshot -- the measured customer retention.
-- Inputs: int_purchase_days; $snapshot_date, $retention_period_days, $active_days.
--
-- Of the customers who bought in a period, the share who bought again in the next one:
--   annual (for CLV): periods of retention_period_days, annualised as r_period ^ (365 / days)
--   activity (for KPIs): periods of active_days -- the period-over-period retention
-- Null when nobody bought in the earlier period (the history is too short to measure it).

with purchase_days as (

    select customer_id, purchase_date from int_purchase_days

),

bounds as (

    select
        $snapshot_date::date as snapshot_date,
        $retention_period_days::integer as long_days,
        $active_days::integer as short_days

),

flags as (

    select
        p.customer_id,
        bool_or(p.purchase_date > b.snapshot_date - 2 * b.long_days and p.purchase_date <= b.snapshot_date - b.long_days) as in_long_base,
        bool_or(p.purchase_date > b.snapshot_date - b.long_days) as in_long_last,
        bool_or(p.purchase_date > b.snapshot_date - 2 * b.short_days and p.purchase_date <= b.snapshot_date - b.short_days) as in_short_base,
        bool_or(p.purchase_date > b.snapshot_date - b.short_days) as in_short_last

    from purchase_days as p
    cross join bounds as b
    group by p.customer_id

),

counted as (

    select
        count(*) filter (where in_long_base) as long_base,
        count(*) filter (where in_long_base and in_long_last) as long_retained,
        count(*) filter (where in_short_base) as short_base,
        count(*) filter (where in_short_base and in_short_last) as short_retained

    from flags

)

select
    long_base as annual_base_customers,
    long_retained as annual_retained_customers,
    case when long_base > 0
        then pow(long_retained / long_base, 365.0 / (select long_days from bounds))
    end as annual_retention_rate,
    short_base as period_base_customers,
    short_retained as period_retained_customers,
    case when short_base > 0 then short_retained / short_base end as period_retention_rate

from counted
