-- int_customer_formula_clv
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_customers, int_clv_assumptions; $servicing_cost_per_order, $clv_min_tenure_days.
-- Formula CLVs, as the value literature states them:
--   clv_simple    = average purchase value x purchase frequency per year x expected lifetime in years
--   clv_retention = annual margin x r / (1 + d - r)      (r, d, lifetime: int_clv_assumptions)
-- historical_profit = gross profit - servicing cost per purchase order. Per-year rates use the
-- customer's observed days (first purchase to snapshot, inclusive), at least
-- clv.min_tenure_days.

with customers as (

    select * from int_customers

),

assumptions as (

    select * from int_clv_assumptions

),

observed as (

    select
        customers.customer_id,
        customers.order_count,
        customers.average_order_value as average_purchase_value,
        customers.net_revenue as historical_revenue,
        customers.gross_profit - $servicing_cost_per_order * customers.order_count as historical_profit,
        greatest(customers.tenure_days + 1, $clv_min_tenure_days) / 365.25 as observed_years

    from customers

),

annualised as (

    select
        observed.*,
        observed.order_count / observed.observed_years as purchase_frequency_per_year,
        observed.historical_profit / observed.observed_years as annual_margin

    from observed

),

final as (

    select
        annualised.customer_id,
        annualised.historical_revenue,
        annualised.historical_profit,
        annualised.average_purchase_value,
        annualised.purchase_frequency_per_year,
        assumptions.expected_lifetime_years,
        annualised.average_purchase_value * annualised.purchase_frequency_per_year
            * assumptions.expected_lifetime_years as clv_simple,
        annualised.annual_margin,
        assumptions.retention_rate,
        assumptions.discount_rate,
        annualised.annual_margin * assumptions.retention_rate
            / (1 + assumptions.discount_rate - assumptions.retention_rate) as clv_retention

    from annualised
    cross join assumptions

)

select * from final
