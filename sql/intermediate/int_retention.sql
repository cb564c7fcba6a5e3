-- int_retention
-- Grain: one row per snapshot -- the measured customer retention.
-- Inputs: int_purchase_days; $snapshot_date, $retention_period_days, $active_days.
--
-- Of the customers who bought in a period, the share who bought again in the next one:
--   annual (for CLV): periods of retention_period_days, annualised as r_period ^ (365 / days)
--   activity (for KPIs): periods of active_days -- the period-over-period retention
-- Null when nobody bought in the earlier period (the history is too short to measure it).

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

),

rates as (

    select
        counted.*,
        case when counted.base_customers > 0
            then counted.retained_customers / counted.base_customers
        end as retention_rate

    from counted

),

final as (

    select
        annual.base_customers as annual_base_customers,
        annual.retained_customers as annual_retained_customers,
        pow(annual.retention_rate, 365.0 / annual.period_days) as annual_retention_rate,
        activity.base_customers as period_base_customers,
        activity.retained_customers as period_retained_customers,
        activity.retention_rate as period_retention_rate

    from rates as annual
    cross join rates as activity
    where annual.period = 'annual' and activity.period = 'activity'

)

select * from final
