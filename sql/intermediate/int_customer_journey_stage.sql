-- int_customer_journey_stage
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_customers, int_customer_order_sequence,
--         int_customer_abc_class, int_customer_loyalty_tier, int_customer_lifecycle_stage,
--         int_customer_clv_percentile; $journey_high_value_rule, $journey_high_value_classes,
--         $journey_high_value_tiers, $journey_min_clv_percentile.
-- The journey a shop wants its customers on: one_time -> repeat -> high_value.
--   journey_stage     one_time: one purchase day; repeat: two or more; high_value: a repeat
--                     customer who meets the high-value rule (config journey.high_value:
--                     abc_class in abc_classes, loyalty_tier in loyalty_tiers, or
--                     clv_percentile >= min_clv_percentile)
--   activity_state    from the lifecycle stage: lapsed and at_risk as they are, every other
--                     stage active (new, one_time, repeat, loyal, reactivated)
--   became_repeat_on  the second purchase day (purchase days, as everywhere: two orders on
--                     one day are one occasion); days_to_second_purchase from the first
--   high_value_revenue_bar   the lowest net revenue to date of a high_value customer
--   became_high_value_on     for a high_value customer: the first day, on or after
--                     became_repeat_on, whose net revenue to date (end of day) reached the
--                     bar. For the abc_class rule this is the day their revenue first ranked
--                     them in today's high-value classes; for the other rules revenue stands
--                     in for the rule. Judged against this snapshot's bar, so the date is a
--                     function of this snapshot's orders alone.

with customers as (

    select * from int_customers

),

sequence as (

    select * from int_customer_order_sequence

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

clv_percentiles as (

    select * from int_customer_clv_percentile

),

ruled as (

    select
        customers.customer_id,
        customers.first_purchase_date,
        customers.purchase_days,
        customers.net_revenue,
        lifecycle_stages.lifecycle_stage,
        customers.second_purchase_date as became_repeat_on,
        coalesce(case $journey_high_value_rule
            when 'abc_class' then list_contains($journey_high_value_classes, abc_classes.abc_class)
            when 'loyalty_tier' then list_contains($journey_high_value_tiers, loyalty_tiers.loyalty_tier)
            else clv_percentiles.clv_percentile >= $journey_min_clv_percentile
        end, false) as meets_high_value_rule

    from customers
    left join abc_classes using (customer_id)
    left join loyalty_tiers using (customer_id)
    left join lifecycle_stages using (customer_id)
    left join clv_percentiles using (customer_id)

),

staged as (

    select
        ruled.customer_id,
        ruled.first_purchase_date,
        ruled.net_revenue,
        case
            when ruled.purchase_days < 2 then 'one_time'
            when ruled.meets_high_value_rule then 'high_value'
            else 'repeat'
        end as journey_stage,
        case ruled.lifecycle_stage
            when 'lapsed' then 'lapsed'
            when 'at_risk' then 'at_risk'
            else 'active'
        end as activity_state,
        ruled.became_repeat_on,
        datediff('day', ruled.first_purchase_date, ruled.became_repeat_on) as days_to_second_purchase

    from ruled

),

bar as (

    select min(staged.net_revenue) filter (where staged.journey_stage = 'high_value') as high_value_revenue_bar

    from staged

),

reached as (

    select
        sequence.customer_id,
        min(sequence.order_date) as became_high_value_on

    from sequence
    inner join staged using (customer_id)
    cross join bar
    where staged.journey_stage = 'high_value'
        and sequence.order_date >= staged.became_repeat_on
        and sequence.revenue_to_date >= bar.high_value_revenue_bar
    group by sequence.customer_id

),

final as (

    select
        staged.customer_id,
        staged.journey_stage,
        staged.activity_state,
        staged.became_repeat_on,
        staged.days_to_second_purchase,
        reached.became_high_value_on,
        bar.high_value_revenue_bar

    from staged
    cross join bar
    left join reached using (customer_id)

)

select * from final
