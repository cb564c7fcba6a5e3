-- int_customer_formula_clv
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_customers, int_clv_assumptions; $servicing_cost_per_order,
--         $clv_frequency_prior_days.
-- Formula CLVs, as the value literature states them:
--   clv_simple    = average purchase value x purchase frequency per year x expected lifetime in years
--   clv_retention = annual margin x r / (1 + d - r)      (r, d, lifetime: int_clv_assumptions)
-- Purchase frequency per year: the customer's repeat purchases per year since their first
-- purchase, shrunk towards the population's rate -- the gamma-Poisson posterior mean
--   (repeat purchases + population rate x prior years) / (observed years + prior years)
-- with prior years = clv.frequency_prior_days / 365.25 and the population rate = all repeat
-- purchases / all observed years. A one-time buyer of yesterday gets about the population
-- rate, one of two years ago a small rate, a long-standing repeat buyer nearly their own: a
-- single order is never extrapolated.
-- One profit basis for every CLV column: profit per purchase order = historical profit /
-- purchase orders (gross profit at each order's margin rate -- int_customers; the same rate
-- int_customer_margin gives the predicted CLV -- minus the servicing cost per order); annual
-- margin = profit per order x purchase frequency per year.

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
        customers.order_count - 1 as repeat_purchases,
        customers.average_order_value as average_purchase_value,
        customers.net_revenue as historical_revenue,
        customers.gross_profit - $servicing_cost_per_order * customers.order_count as historical_profit,
        customers.tenure_days,
        customers.tenure_days / 365.25 as observed_years

    from customers

),

population as (

    select
        -- integer sums: exact, so a rerun gives the same bits whatever DuckDB's thread split
        coalesce(
            sum(observed.repeat_purchases)::double * 365.25 / nullif(sum(observed.tenure_days), 0),
            0
        ) as repeat_rate,
        $clv_frequency_prior_days / 365.25 as prior_years

    from observed

),

annualised as (

    select
        observed.*,
        (observed.repeat_purchases + population.repeat_rate * population.prior_years)
            / (observed.observed_years + population.prior_years) as purchase_frequency_per_year,
        observed.historical_profit / observed.order_count as profit_per_order

    from observed
    cross join population

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
        annualised.profit_per_order * annualised.purchase_frequency_per_year as annual_margin,
        assumptions.retention_rate,
        assumptions.discount_rate,
        annualised.profit_per_order * annualised.purchase_frequency_per_year * assumptions.retention_rate
            / (1 + assumptions.discount_rate - assumptions.retention_rate) as clv_retention

    from annualised
    cross join assumptions

)

select * from final
