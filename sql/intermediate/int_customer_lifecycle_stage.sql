-- int_customer_lifecycle_stage
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_customers; $lifecycle_new_days, $lifecycle_at_risk_factor,
--         $lifecycle_lapsed_factor, $lifecycle_loyal_min_purchase_days,
--         $lifecycle_one_time_gap_days.
-- Lifecycle stages and their order are documented in pipelines/defaults.yaml (lifecycle).
-- A customer's expected gap between purchase days is their own mean gap; the gap expected
-- before their last purchase is their mean gap before it. One-time buyers (and, for the
-- prior gap, two-time buyers) have no rhythm of their own: they get the population's gap
-- (config one_time_gap_days, else the median of the repeat buyers' mean gaps).

with customers as (

    select * from int_customers

),

population as (

    select
        coalesce($lifecycle_one_time_gap_days::double, median(customers.mean_gap_days)) as population_gap_days

    from customers

),

rhythm as (

    select
        customers.customer_id,
        customers.tenure_days,
        customers.recency_days,
        customers.purchase_days,
        customers.last_gap_days,
        coalesce(customers.mean_gap_days, population.population_gap_days) as expected_gap_days,
        coalesce(customers.prior_gap_days, population.population_gap_days) as prior_expected_gap_days

    from customers
    cross join population

),

staged as (

    select
        rhythm.customer_id,
        case
            when rhythm.tenure_days < $lifecycle_new_days then 'new'
            when rhythm.recency_days > $lifecycle_lapsed_factor * rhythm.expected_gap_days then 'lapsed'
            when rhythm.recency_days > $lifecycle_at_risk_factor * rhythm.expected_gap_days then 'at_risk'
            when rhythm.purchase_days >= 2
                and rhythm.last_gap_days > $lifecycle_lapsed_factor * rhythm.prior_expected_gap_days
                and rhythm.recency_days <= $lifecycle_at_risk_factor * rhythm.prior_expected_gap_days
                then 'reactivated'
            when rhythm.purchase_days >= $lifecycle_loyal_min_purchase_days then 'loyal'
            when rhythm.purchase_days >= 2 then 'repeat'
            else 'one_time'
        end as lifecycle_stage

    from rhythm

)

select * from staged
