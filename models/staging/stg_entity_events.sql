select
    e.event_id,
    e.entity_type,
    coalesce(t.entity_category, 'other') as entity_category,
    e.entity_id,
    e.user_id,
    e.metric_type,
    e.metric_value,
    e.created_at
from {{ source('raw', 'entity_events') }} as e
left join {{ ref('entity_types') }} as t on t.entity_type = e.entity_type
