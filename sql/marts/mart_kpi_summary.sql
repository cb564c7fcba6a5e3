-- mart_kpi_summary  (published as kpi_summary)
-- Grain: one row per snapshot.
-- Inputs: int_customers, int_customer_abc_class, int_order_totals, int_retention,
--         mart_customer_clv, int_clv_predictions (Python model), int_model_inputs; $active_days.
-- Active customers bought in the last active_days days: a count, not a model estimate (the
-- model's expectation is model_alive_customers, one-time buyers counted alive as BG/NBD
-- does). Retention and churn compare the last active_days with the active_days before
-- (period over period). Revenue shares are
-- those of the ABC classes' positive revenue (int_customer_abc_class).
-- Averages of doubles are taken over DECIMAL values: exact sums do not depend on how DuckDB
-- splits the work between threads, so a rerun gives the same row.

with customers as (

    select * from int_customers

),

abc_classes as (

    select * from int_customer_abc_class

),

order_totals as (

    select * from int_order_totals

),

retention as (

    select * from int_retention

),

clv as (

    select * from mart_customer_clv

),

predictions as (

    select * from int_clv_predictions

),

model_inputs as (

    select * from int_model_inputs

),

customer_totals as (

    select
        count(*) as customers,
        count(*) filter (where customers.recency_days < $active_days) as active_customers,
        count(*) filter (where customers.tenure_days < $active_days) as new_customers,
        avg(case when customers.order_count >= 2 then 1.0 else 0.0 end) as repeat_purchase_rate,
        sum(customers.order_count)::bigint as purchase_orders,
        sum(abc_classes.positive_revenue) as positive_revenue,
        sum(abc_classes.positive_revenue) filter (where abc_classes.abc_class = 'A') as revenue_a,
        sum(abc_classes.positive_revenue) filter (where abc_classes.abc_class = 'B') as revenue_b,
        sum(abc_classes.positive_revenue) filter (where abc_classes.abc_class = 'C') as revenue_c

    from customers
    inner join abc_classes using (customer_id)

),

clv_averages as (

    select
        avg(clv.clv_simple::decimal(38, 10)) as avg_clv_simple,
        avg(clv.clv_retention::decimal(38, 10)) as avg_clv_retention,
        avg(clv.expected_lifetime_years::decimal(38, 10)) as average_lifespan_years

    from clv

),

prediction_totals as (

    select
        avg(predictions.predicted_clv_longest::decimal(38, 10)) as avg_predicted_clv,
        sum(predictions.p_alive::decimal(38, 12)) as model_alive_customers,
        sum(predictions.p_alive::decimal(38, 12)) filter (where model_inputs.frequency >= 1)
            as model_alive_repeat_customers

    from predictions
    inner join model_inputs using (customer_id)

),

final as (

    select
        customer_totals.customers,
        customer_totals.active_customers,
        customer_totals.new_customers,
        customer_totals.repeat_purchase_rate,
        retention.period_retention_rate as retention_rate,
        1 - retention.period_retention_rate as churn_rate,
        retention.annual_retention_rate,
        order_totals.net_revenue,
        order_totals.returned_revenue,
        customer_totals.purchase_orders,
        order_totals.return_orders,
        order_totals.cancelled_orders,
        order_totals.net_revenue / nullif(customer_totals.purchase_orders, 0) as average_order_value,
        customer_totals.purchase_orders / nullif(customer_totals.customers, 0) as purchase_frequency,
        clv_averages.average_lifespan_years,
        clv_averages.avg_clv_simple,
        clv_averages.avg_clv_retention,
        prediction_totals.avg_predicted_clv,
        prediction_totals.model_alive_customers,
        prediction_totals.model_alive_repeat_customers,
        coalesce(customer_totals.revenue_a, 0) / nullif(customer_totals.positive_revenue, 0) as revenue_share_a,
        coalesce(customer_totals.revenue_b, 0) / nullif(customer_totals.positive_revenue, 0) as revenue_share_b,
        coalesce(customer_totals.revenue_c, 0) / nullif(customer_totals.positive_revenue, 0) as revenue_share_c

    from customer_totals
    cross join order_totals
    cross join retention
    cross join clv_averages
    cross join prediction_totals

)

select * from final
