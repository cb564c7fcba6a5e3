-- mart_customer_rfm  (published as customer_rfm)
-- Grain: one row per customer with at least one purchase, per snapshot.
-- Inputs: int_customers, cfg_rfm_cells (config rfm.segments resolved for every score cell),
--         cfg_loyalty_tiers (config loyalty.tiers);
--         $rfm_bins, $abc_a_share, $abc_b_share, $lifecycle_* parameters.
--
-- Scores are bins of the customer's rank (5 bins = quintiles): score = 1 + floor(bins * (rank - 1) / n)
-- with rank() so that equal values share a score (a customer's score never depends on their id)
-- and every rerun gives the same scores. Recency is reversed: the most recent buyers score highest.
-- ABC: customers ranked by net revenue (then id); A while the revenue of the customers ranked
-- before them is under a_share of the total positive revenue, B under b_share, else C.
-- Lifecycle stages and their order are documented in pipelines/defaults.yaml (lifecycle).

with customers as (

    select * from int_customers

),

cells as (

    select * from cfg_rfm_cells

),

tiers as (

    select * from cfg_loyalty_tiers

),

scored as (

    select
        *,
        1 + floor($rfm_bins * (rank() over (order by recency_days desc) - 1) / count(*) over ())::integer as r_score,
        1 + floor($rfm_bins * (rank() over (order by order_count asc) - 1) / count(*) over ())::integer as f_score,
        1 + floor($rfm_bins * (rank() over (order by net_revenue asc) - 1) / count(*) over ())::integer as m_score

    from customers

),

segmented as (

    select
        c.customer_id,
        s.segment as rfm_segment

    from scored as c
    inner join cells as s using (r_score, f_score)

),

abc as (

    select
        customer_id,
        coalesce(sum(greatest(net_revenue, 0)) over (
            order by net_revenue desc, customer_id rows between unbounded preceding and 1 preceding
        ), 0) as revenue_before,
        sum(greatest(net_revenue, 0)) over () as positive_revenue

    from customers

),

classed as (

    select
        a.customer_id,
        case
            when c.net_revenue <= 0 then 'C'
            when round(a.revenue_before, 6) < round($abc_a_share * a.positive_revenue, 6) then 'A'
            when round(a.revenue_before, 6) < round($abc_b_share * a.positive_revenue, 6) then 'B'
            else 'C'
        end as abc_class

    from abc as a
    inner join customers as c using (customer_id)

),

tiered as (

    -- the first tier (from the top) whose minimums the customer meets
    select
        c.customer_id,
        arg_min(t.tier, t.priority) as loyalty_tier

    from customers as c
    inner join tiers as t
        on greatest(c.window_spend, 0) >= t.min_spend
        and c.window_orders >= t.min_orders
    group by c.customer_id

),

rhythm as (

    -- One-time buyers have no rhythm of their own: they get the median of the repeat buyers'.
    select coalesce($lifecycle_one_time_gap_days::double, median(mean_gap_days)) as population_gap_days
    from customers

),

staged as (

    select
        c.customer_id,
        case
            when c.tenure_days < $lifecycle_new_days then 'new'
            when c.recency_days > $lifecycle_lapsed_factor * coalesce(c.mean_gap_days, r.population_gap_days) then 'lapsed'
            when c.recency_days > $lifecycle_at_risk_factor * coalesce(c.mean_gap_days, r.population_gap_days) then 'at_risk'
            when c.purchase_days >= 2
                and c.last_gap_days > $lifecycle_lapsed_factor * coalesce(c.prior_gap_days, r.population_gap_days)
                and c.recency_days <= $lifecycle_at_risk_factor * coalesce(c.prior_gap_days, r.population_gap_days)
                then 'reactivated'
            when c.purchase_days >= $lifecycle_loyal_min_purchase_days then 'loyal'
            when c.purchase_days >= 2 then 'repeat'
            else 'one_time'
        end as lifecycle_stage

    from customers as c
    cross join rhythm as r

),

final as (

    select
        s.customer_id,
        s.first_purchase_date as first_order_date,
        s.last_purchase_date as last_order_date,
        s.recency_days,
        s.order_count,
        s.net_revenue as monetary_total,
        s.net_revenue / s.order_count as avg_order_value,
        s.tenure_days,
        s.r_score,
        s.f_score,
        s.m_score,
        s.r_score::varchar || s.f_score::varchar || s.m_score::varchar as rfm_cell,
        g.rfm_segment,
        k.abc_class,
        t.loyalty_tier,
        l.lifecycle_stage,
        s.email_hmac

    -- left joins: a customer without a segment, class, tier or stage fails the contract's
    -- required-column check at publish time instead of silently disappearing
    from scored as s
    left join segmented as g using (customer_id)
    left join classed as k using (customer_id)
    left join tiered as t using (customer_id)
    left join staged as l using (customer_id)

)

select * from final
order by customer_id
