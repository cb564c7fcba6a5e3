-- mart_customer_rfm  (published as customer_rfm)
-- Grain: one row per customer with at least one purchase, per snapshot.
-- Inputs: int_customers, int_customer_rfm_scores, int_customer_rfm_segment,
--         int_customer_abc_class, int_customer_loyalty_tier, int_customer_lifecycle_stage.
-- The customer's purchase summary with their R/F/M scores, RFM segment, ABC class, loyalty
-- tier and lifecycle stage; each is defined in its own model.

with customers as (

    select * from int_customers

),

rfm_scores as (

    select * from int_customer_rfm_scores

),

rfm_segments as (

    select * from int_customer_rfm_segment

),

abc_classes as (

    select * from int_customer_abc_class

),

loyalty_tiers as (

    select * from int_customer_loyalty_tier

),

lifecycle_stages as (

    select * from int_customer_lifecycle_stage

),

final as (

    select
        customers.customer_id,
        customers.first_purchase_date as first_order_date,
        customers.last_purchase_date as last_order_date,
        customers.recency_days,
        customers.order_count,
        customers.net_revenue as monetary_total,
        customers.average_order_value as avg_order_value,
        customers.tenure_days,
        rfm_scores.r_score,
        rfm_scores.f_score,
        rfm_scores.m_score,
        rfm_scores.rfm_cell,
        rfm_segments.rfm_segment,
        abc_classes.abc_class,
        loyalty_tiers.loyalty_tier,
        lifecycle_stages.lifecycle_stage,
        customers.email_hmac

    -- left joins: a customer without a segment, class, tier or stage fails the contract's
    -- required-column check at publish time instead of silently disappearing
    from customers
    left join rfm_scores using (customer_id)
    left join rfm_segments using (customer_id)
    left join abc_classes using (customer_id)
    left join loyalty_tiers using (customer_id)
    left join lifecycle_stages using (customer_id)

)

select * from final
order by final.customer_id
