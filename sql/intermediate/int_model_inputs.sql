-- int_model_inputs
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_customer_purchase_summary (its snapshot cutoff).
-- The inputs of BG/NBD and Gamma-Gamma at the snapshot date (frequency, recency, T,
-- monetary_value: defined in int_customer_purchase_summary), read by the Python models
-- int_model_fits and int_clv_predictions.

with purchase_summary as (

    select * from int_customer_purchase_summary
    where int_customer_purchase_summary.cutoff = 'snapshot'

),

final as (

    select
        purchase_summary.customer_id,
        purchase_summary.frequency,
        purchase_summary.recency,
        purchase_summary.T,
        purchase_summary.monetary_value

    from purchase_summary

)

select * from final
