-- mart_customer_clv  (published as customer_clv)
-- Grain: one row per customer with at least one purchase, per snapshot.
-- Inputs: int_customer_clv_basis (int_customers, int_customer_formula_clv, int_customer_margin,
--         int_model_inputs), int_clv_predictions (Python model:
--         pipelines/predictive/predictive.py), int_customer_clv_percentile,
--         int_customer_referrals, int_customer_acquisition.
-- The customer's value in one row; each part is defined in its own model:
--   first_order_date                                           int_customers
--   formula CLVs (clv_simple, clv_retention and their inputs)  int_customer_formula_clv
--   margin_rate (the one profit basis of every CLV column)     int_customer_margin
--   model inputs (frequency, recency, T, monetary_value)       int_model_inputs
--     (the four joined in int_customer_clv_basis)
--   predictions (BG/NBD + Gamma-Gamma): p_alive, expected_avg_order_value,
--     expected_purchases_<h>, predicted_clv_<h> for the configured horizons h (days)
--                                                              int_clv_predictions
--   clv_percentile                                             int_customer_clv_percentile
--   referral_count, referred_revenue                           int_customer_referrals
--   acquisition channel and month, cac, ltv_cac_ratio and its
--     status, payback                                         int_customer_acquisition

with basis as (

    select * from int_customer_clv_basis

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
        basis.*,
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

    from basis
    inner join predictions using (customer_id)
    inner join percentiles using (customer_id)
    inner join referrals using (customer_id)
    inner join acquisition using (customer_id)

)

select * from final
order by final.customer_id
