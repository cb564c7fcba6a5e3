-- int_customer_abc_class
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_customers; $abc_a_share, $abc_b_share.
-- Customers ranked by net revenue (then id); A while the revenue of the customers ranked
-- before them is under a_share of the total positive revenue, B under b_share, else C.
-- A customer without positive revenue is C. positive_revenue = max(net revenue, 0): the
-- revenue that counts towards the shares (kpi_summary's revenue_share_* too).

with customers as (

    select * from int_customers

),

revenue as (

    select
        customers.customer_id,
        customers.net_revenue,
        greatest(customers.net_revenue, 0) as positive_revenue

    from customers

),

ranked as (

    select
        revenue.*,
        coalesce(sum(revenue.positive_revenue) over (
            order by revenue.net_revenue desc, revenue.customer_id
            rows between unbounded preceding and 1 preceding
        ), 0) as revenue_before,
        sum(revenue.positive_revenue) over () as total_positive_revenue

    from revenue

),

classed as (

    select
        ranked.customer_id,
        ranked.positive_revenue,
        case
            when ranked.net_revenue <= 0 then 'C'
            when round(ranked.revenue_before, 6) < round($abc_a_share * ranked.total_positive_revenue, 6) then 'A'
            when round(ranked.revenue_before, 6) < round($abc_b_share * ranked.total_positive_revenue, 6) then 'B'
            else 'C'
        end as abc_class

    from ranked

)

select * from classed
