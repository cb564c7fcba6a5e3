-- int_customer_referrals
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_customers (referred_by: the referrer named on a customer's first order that
--         names one).
-- referral_count = customers who name this customer as their referrer; referred_revenue =
-- their net revenue. Zero for customers who referred nobody; a referrer who is not a
-- customer of the snapshot has no row.

with customers as (

    select * from int_customers

),

referred as (

    select
        customers.referred_by as customer_id,
        count(*) as referral_count,
        sum(customers.net_revenue) as referred_revenue

    from customers
    where customers.referred_by is not null
    group by customers.referred_by

),

final as (

    select
        customers.customer_id,
        coalesce(referred.referral_count, 0) as referral_count,
        coalesce(referred.referred_revenue, 0) as referred_revenue

    from customers
    left join referred using (customer_id)

)

select * from final
