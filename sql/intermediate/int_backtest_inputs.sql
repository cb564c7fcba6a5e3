-- int_backtest_inputs
-- Grain: one row per customer with a purchase on or before the calibration date.
-- Inputs: int_customer_purchase_summary (its calibration cutoff), int_purchase_days;
--         $backtest_calibration_date (the snapshot date minus the holdout).
-- The calibration-period summary (frequency, recency, T, monetary_value to the calibration
-- date: defined in int_customer_purchase_summary) and what actually happened in the holdout:
-- repeat purchase days after the calibration date up to the snapshot date, and their value.
-- Read by the Python models int_model_fits and int_backtest_predictions.

with calibration as (

    select * from int_customer_purchase_summary
    where int_customer_purchase_summary.cutoff = 'calibration'

),

purchase_days as (

    select * from int_purchase_days

),

holdout as (

    select
        purchase_days.customer_id,
        count(*) as actual_purchases,
        sum(purchase_days.purchase_value) as actual_value

    from purchase_days
    where purchase_days.purchase_date > $backtest_calibration_date::date
    group by purchase_days.customer_id

),

final as (

    select
        calibration.customer_id,
        calibration.frequency,
        calibration.recency,
        calibration.T,
        calibration.monetary_value,
        coalesce(holdout.actual_purchases, 0) as actual_purchases,
        coalesce(holdout.actual_value, 0) as actual_value

    from calibration
    left join holdout using (customer_id)

)

select * from final
