-- int_customer_clv_basis
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_customers, int_customer_formula_clv, int_customer_margin, int_model_inputs.
-- The first half of mart_customer_clv: what a customer's value is computed from -- the first
-- order, the formula CLVs and their inputs, the margin rate and the model inputs. The mart
-- joins the second half (predictions, percentile, referrals, acquisition) to it. Joining all
-- eight customer tables in one query held seven hash tables in one DuckDB pipeline, which
-- cannot spill together: 10M orders ran out of 200 MB; four and then five at a time did not.
-- At 100M orders (31M customers, DuckDB's 2 GB) the mart built this way.

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
        model_inputs.monetary_value

    from customers
    inner join formula_clv using (customer_id)
    inner join margins using (customer_id)
    inner join model_inputs using (customer_id)

)

select * from final
