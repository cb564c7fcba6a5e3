-- int_retention
-- Grain: one row per snapshot -- the measured customer retention.
-- Inputs: int_retention_counts.
--
-- Of the customers who bought in a period, the share who bought again in the next one:
--   annual (for CLV): periods of retention_period_days, annualised as r_period ^ (365 / days)
--   activity (for KPIs): periods of active_days -- the period-over-period retention
-- Null when nobody bought in the earlier period (the history is too short to measure it).

with counted as (

    select * from int_retention_counts

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
