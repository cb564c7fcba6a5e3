-- int_backtest_inputs
-- Grain: one row per customer with a purchase on or before the calibration date.
-- Inputs: int_purchase_days; $backtest_calibration_date (the snapshot date minus the holdout).
-- The calibration-period summary (frequency, recency, T to the calibration date, as in
-- int_model_inputs) and what actually happened in the holdout: repeat purchase days after the
-- calibration date up to the snapshot date.

with purchase_days as (

    select * from int_purchase_days

),

calibration as (

    select
        customer_id,
        count(*) as purchase_days,
        min(purchase_date) as first_purchase_date,
        max(purchase_date) as last_purchase_date

    from purchase_days
    where purchase_date <= $backtest_calibration_date::date
    group by customer_id

),

holdout as (

    select customer_id, count(*) as actual_purchases
    from purchase_days
    where purchase_date > $backtest_calibration_date::date
    group by customer_id

),

final as (

    select
        c.customer_id,
        c.purchase_days - 1 as frequency,
        datediff('day', c.first_purchase_date, c.last_purchase_date) as recency,
        datediff('day', c.first_purchase_date, $backtest_calibration_date::date) as T,
        coalesce(h.actual_purchases, 0) as actual_purchases

    from calibration as c
    left join holdout as h using (customer_id)

)

select * from final
