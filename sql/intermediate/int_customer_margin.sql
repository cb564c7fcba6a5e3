-- int_customer_margin
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_customers; $gross_margin.
-- The margin rate every CLV column applies to revenue: the customer's historical gross profit
-- / net revenue (orders with cost or margin columns count their actual costs, the others
-- clv.gross_margin: int_customers); clv.gross_margin when the net revenue is not positive.
-- Historical profit, the formula CLVs (int_customer_formula_clv) and the predicted CLV
-- (pipelines/predictive/predictive.py) all use it, with clv.servicing_cost_per_order deducted
-- per order: one profit basis.

with customers as (

    select * from int_customers

),

final as (

    select
        customers.customer_id,
        case when customers.net_revenue > 0
            then customers.gross_profit / customers.net_revenue
            else $gross_margin
        end::double as margin_rate

    from customers

)

select * from final
