-- mart_customer_journey  (published as customer_journey)
-- Grain: one row per customer with at least one purchase, per snapshot.
-- Inputs: int_customers, int_customer_journey_stage, int_customer_upsell,
--         int_customer_first_order_economics, int_customer_acquisition.
-- Where the customer is on the journey one_time -> repeat -> high_value and since when,
-- whether their orders grow (up-sell), and what their first order earned against the
-- acquisition cost; each is defined in its own model.

with customers as (

    select * from int_customers

),

journey_stages as (

    select * from int_customer_journey_stage

),

upsell as (

    select * from int_customer_upsell

),

economics as (

    select * from int_customer_first_order_economics

),

acquisition as (

    select * from int_customer_acquisition

),

final as (

    select
        customers.customer_id,
        customers.first_purchase_date as first_order_date,
        customers.purchase_days,
        journey_stages.journey_stage,
        journey_stages.activity_state,
        journey_stages.became_repeat_on,
        journey_stages.days_to_second_purchase,
        journey_stages.became_high_value_on,
        upsell.first_order_value,
        upsell.recent_order_value,
        upsell.aov_growth,
        upsell.first_order_items,
        upsell.recent_items_per_order,
        upsell.items_per_order_trend,
        acquisition.acquisition_channel,
        acquisition.acquisition_month,
        economics.cac,
        economics.first_order_profit,
        economics.first_order_profit_after_cac,
        economics.cac_paid_back,
        economics.cac_payback_orders,
        economics.cac_payback_days

    -- left joins: a customer missing from a model fails the contract's required-column check
    -- at publish time instead of silently disappearing
    from customers
    left join journey_stages using (customer_id)
    left join upsell using (customer_id)
    left join economics using (customer_id)
    left join acquisition using (customer_id)

)

select * from final
order by final.customer_id
