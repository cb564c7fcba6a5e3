-- int_customer_loyalty_tier
-- Grain: one row per customer who meets a tier's minimums -- every customer with a purchase,
-- as the config's last tier has minimums of 0.
-- Inputs: int_customers (window_spend, window_orders: the last loyalty.window_days days),
--         cfg_loyalty_tiers (config loyalty.tiers, priority 1 = the top tier).
-- A customer's tier is the first tier (from the top) whose minimums they meet.

with customers as (

    select * from int_customers

),

tiers as (

    select * from cfg_loyalty_tiers

),

tiered as (

    select
        customers.customer_id,
        arg_min(tiers.tier, tiers.priority) as loyalty_tier

    from customers
    inner join tiers
        on greatest(customers.window_spend, 0) >= tiers.min_spend
        and customers.window_orders >= tiers.min_orders
    group by customers.customer_id

)

select * from tiered
