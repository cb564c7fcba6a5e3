-- mart_customer_clv  (published as customer_clv)
-- Grain: one row per customer with at least one purchase, per snapshot.
-- Inputs: int_customers, int_model_inputs, int_retention, int_acquisition_cost,
--         int_clv_predictions (pipelines/predictive.py);
--         $snapshot_date, $servicing_cost_per_order, $discount_rate, $clv_retention_rate,
--         $clv_expected_lifetime_years, $clv_min_tenure_days.
--
-- Formula CLVs, as the value literature states them:
--   clv_simple    = average purchase value x purchase frequency per year x expected lifetime in years
--                   (lifetime: configured, else 1 / (1 - r) with r the measured annual retention)
--   clv_retention = annual margin x r / (1 + d - r)      (d: annual discount rate)
-- Per-year rates use the customer's observed days (first purchase to snapshot, inclusive),
-- at least clv.min_tenure_days.
-- Model inputs (frequency, recency, T, monetary_value): see int_model_inputs.
-- Predictions (BG/NBD + Gamma-Gamma): p_alive, expected_purchases_<h>, expected_avg_order_value,
-- predicted_clv_<h> for the configured horizons h (days); clv_percentile ranks the predicted
-- CLV of the longest horizon (0 = lowest, 100 = highest).

with customers as (

    select * from int_customers

),

model_inputs as (

    select * from int_model_inputs

),

predictions as (

    select
        * exclude (predicted_clv_longest),
        case when predicted_clv_longest is not null
            then 100 * percent_rank() over (order by predicted_clv_longest)
        end as clv_percentile
    from int_clv_predictions

),

retention as (

    select
        coalesce($clv_retention_rate::double, annual_retention_rate) as retention_rate
    from int_retention

),

acquisition as (

    select * from int_acquisition_cost

),

referrals as (

    select
        referred_by as customer_id,
        count(*) as referral_count,
        sum(net_revenue) as referred_revenue

    from customers
    where referred_by is not null
    group by referred_by

),

valued as (

    select
        c.*,
        r.retention_rate,
        c.net_revenue as historical_revenue,
        c.gross_profit - $servicing_cost_per_order * c.order_count as historical_profit,
        greatest(c.tenure_days + 1, $clv_min_tenure_days) / 365.25 as observed_years,
        coalesce(
            $clv_expected_lifetime_years::double,
            case when r.retention_rate < 1 then 1 / (1 - r.retention_rate) end
        ) as expected_lifetime_years

    from customers as c
    cross join retention as r

),

formulas as (

    select
        *,
        historical_revenue / order_count as average_purchase_value,
        order_count / observed_years as purchase_frequency_per_year,
        historical_profit / observed_years as annual_margin

    from valued

),

final as (

    select
        f.customer_id,
        f.first_purchase_date as first_order_date,
        f.historical_revenue,
        f.historical_profit,
        f.average_purchase_value,
        f.purchase_frequency_per_year,
        f.expected_lifetime_years,
        f.average_purchase_value * f.purchase_frequency_per_year * f.expected_lifetime_years as clv_simple,
        f.annual_margin,
        f.retention_rate,
        $discount_rate::double as discount_rate,
        f.annual_margin * f.retention_rate / (1 + $discount_rate - f.retention_rate) as clv_retention,
        m.frequency,
        m.recency,
        m.T,
        m.monetary_value,
        p.* exclude (customer_id, clv_percentile),
        p.clv_percentile,
        coalesce(x.referral_count, 0) as referral_count,
        coalesce(x.referred_revenue, 0) as referred_revenue,
        f.acquisition_channel,
        date_trunc('month', f.first_purchase_date)::date as acquisition_month,
        a.cac,
        case when a.cac > 0
            then f.annual_margin * f.retention_rate / (1 + $discount_rate - f.retention_rate) / a.cac
        end as ltv_cac_ratio,
        case when a.cac is not null and f.annual_margin > 0 then a.cac / (f.annual_margin / 12) end as payback_months

    from formulas as f
    inner join model_inputs as m using (customer_id)
    inner join predictions as p using (customer_id)
    left join referrals as x using (customer_id)
    left join acquisition as a
        on a.acquisition_month = date_trunc('month', f.first_purchase_date)
        and a.acquisition_channel is not distinct from f.acquisition_channel

)

select * from final
order by customer_id
