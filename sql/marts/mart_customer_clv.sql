-- mart_customer_clv  (published as customer_clv)
-- Grain: one row per customer with at least one purchase, per snapshot.
-- Inputs: int_customers, int_customer_formula_clv, int_customer_margin, int_model_inputs,
--         int_clv_predictions (Python model: pipelines/predictive/predictive.py),
--         int_customer_clv_percentile, int_customer_referrals, int_customer_acquisition.
-- The customer's value in one row; each part is defined in its own model:
--   formula CLVs (clv_simple, clv_retention and their inputs)  int_customer_formula_clv
--   margin_rate (the one profit basis of every CLV column)     int_customer_margin
--   model inputs (frequency, recency, T, monetary_value)       int_model_inputs
--   predictions (BG/NBD + Gamma-Gamma): p_alive, expected_avg_order_value,
--     expected_purchases_<h>, predicted_clv_<h> for the configured horizons h (days)
--                                                              int_clv_predictions
--   clv_percentile                                             int_customer_clv_percentile
--   referral_count, referred_revenue                           int_customer_referrals
--   acquisition channel and month, cac, ltv_cac_ratio and its
--     status, payback                                         int_customer_acquisition

with customers as (

    select * from int_customers

),

formula_clv as (

    select * from int_customer_formula_clv

),

margins as (

    select * from int_customer_margin

),

model_inputs as (

    select * from int_model_inputs

),

predictions as (

    select * from int_clv_predictions

),

percentiles as (

    select * from int_customer_clv_percentile

),

referrals as (

    select * from int_customer_referrals

),

acquisition as (

    select * from int_customer_acquisition

),

final as (

    select
        customers.customer_id,
        customers.first_purchase_date as first_order_date,
        formula_clv.historical_revenue,
        formula_clv.historical_profit,
        formula_clv.average_purchase_value,
        formula_clv.purchase_frequency_per_year,
        formula_clv.expected_lifetime_years,
        formula_clv.clv_simple,
        margins.margin_rate,
        formula_clv.annual_margin,
        formula_clv.retention_rate,
        formula_clv.discount_rate,
        formula_clv.clv_retention,
        model_inputs.frequency,
        model_inputs.recency,
        model_inputs.T,
        model_inputs.monetary_value,
        predictions.* exclude (customer_id, predicted_clv_longest),
        percentiles.clv_percentile,
        referrals.referral_count,
        referrals.referred_revenue,
        acquisition.acquisition_channel,
        acquisition.acquisition_month,
        acquisition.cac,
        acquisition.ltv_cac_ratio,
        acquisition.ltv_cac_status,
        acquisition.payback_months

    from customers
    inner join formula_clv using (customer_id)
    inner join margins using (customer_id)
    inner join model_inputs using (customer_id)
    inner join predictions using (customer_id)
    inner join percentiles using (customer_id)
    inner join referrals using (customer_id)
    inner join acquisition using (customer_id)

)

select * from final
order by final.customer_id
