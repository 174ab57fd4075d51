select user_id, observed_at, followers
from {{ source('raw', 'follower_snapshots') }}
