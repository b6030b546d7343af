//! `ListStreams` and `ListShards`, with their page caps and tokens.

use super::*;

impl Api<'_> {
    pub(super) fn list_streams(&self, req: ListStreamsReq) -> Result<Vec<u8>, ApiError> {
        let limit = req.limit.unwrap_or(100);
        check_range("limit", limit, 1, 10_000)?;
        // Values above 100 are accepted, and at most 100 streams come back.
        let limit = limit.min(100);
        let after = match &req.next_token {
            Some(token) => Some(
                URL_SAFE_NO_PAD
                    .decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| ApiError::invalid_argument("Invalid NextToken."))?,
            ),
            None => req.exclusive_start_stream_name.clone(),
        };
        let all = self.core.list_streams();
        let mut page: Vec<_> = all
            .into_iter()
            .filter(|s| after.as_ref().is_none_or(|a| s.name.as_str() > a.as_str()))
            .collect();
        let has_more = page.len() > limit as usize;
        page.truncate(limit as usize);
        let mut out = json!({
            "StreamNames": page.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            "HasMoreStreams": has_more,
            "StreamSummaries": page.iter().map(|s| json!({
                "StreamName": s.name,
                "StreamARN": s.arn,
                "StreamStatus": s.status.as_str(),
                "StreamModeDetails": { "StreamMode": s.mode.as_str() },
                "StreamCreationTimestamp": s.created_ms as f64 / 1000.0,
            })).collect::<Vec<_>>(),
        });
        if has_more && let Some(last) = page.last() {
            out["NextToken"] = json!(URL_SAFE_NO_PAD.encode(&last.name));
        }
        to_body(out)
    }

    pub(super) fn list_shards(&self, req: ListShardsReq) -> Result<Vec<u8>, ApiError> {
        let now = self.core.clock().now_ms();
        let (handle, after, filter_req, max) = if let Some(token) = &req.next_token {
            for (given, name) in [
                (req.stream_name.is_some(), "StreamName"),
                (req.stream_arn.is_some(), "StreamARN"),
                (
                    req.exclusive_start_shard_id.is_some(),
                    "ExclusiveStartShardId",
                ),
                (req.shard_filter.is_some(), "ShardFilter"),
            ] {
                if given {
                    return Err(ApiError::invalid_argument(format!(
                        "NextToken and {name} cannot be provided together."
                    )));
                }
            }
            let token: ListShardsToken = URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| ApiError::invalid_argument("Invalid NextToken."))?;
            if now.saturating_sub(token.issued_ms) > 300_000 {
                return Err(ApiError::new(
                    "ExpiredNextTokenException",
                    "The NextToken has expired.",
                ));
            }
            let handle = self.core.stream(&token.stream)?;
            if handle.created_ms() != token.created_ms {
                return Err(ApiError::invalid_argument(
                    "NextToken belongs to a stream that no longer exists.",
                ));
            }
            // Each call stands on its own: its own MaxResults, not the first call's.
            (handle, token.after, token.filter, req.max_results)
        } else {
            let handle = self.stream(&req.stream_name, &req.stream_arn)?;
            let after = match &req.exclusive_start_shard_id {
                Some(id) => Some(parse_shard_id(id).ok_or_else(|| {
                    validation("exclusiveStartShardId", id, "Member must be a shard id")
                })?),
                None => None,
            };
            (handle, after, req.shard_filter.clone(), req.max_results)
        };
        self.core.control(Control::ListShards(handle.name()))?;
        let max = max.unwrap_or(LIST_SHARDS_PAGE as i64);
        check_range("maxResults", max, 1, MAX_LIST_SHARDS_RESULTS as i64)?;
        // Values above 1000 are accepted, and at most 1000 shards come back.
        let max = max.min(LIST_SHARDS_PAGE as i64);
        if handle.status() == crate::kinesis::model::StreamStatus::Creating {
            return Err(ApiError::in_use(format!(
                "Stream {} under account {} is in CREATING state.",
                handle.name(),
                self.core.config().account_id
            )));
        }
        let filter = match &filter_req {
            None => ShardFilter::All,
            Some(f) => match f.kind.as_str() {
                "AT_LATEST" => ShardFilter::AtLatest,
                "AT_TRIM_HORIZON" => ShardFilter::AtTrimHorizon,
                "FROM_TRIM_HORIZON" => ShardFilter::FromTrimHorizon,
                "AFTER_SHARD_ID" => {
                    let id = f.shard_id.as_deref().ok_or_else(|| {
                        ApiError::invalid_argument(
                            "ShardFilter type AFTER_SHARD_ID requires ShardId",
                        )
                    })?;
                    ShardFilter::AfterShardId(parse_shard_id(id).ok_or_else(|| {
                        ApiError::invalid_argument(format!("Invalid ShardId {id} in ShardFilter"))
                    })?)
                }
                "AT_TIMESTAMP" | "FROM_TIMESTAMP" => {
                    let ts = f.timestamp.ok_or_else(|| {
                        ApiError::invalid_argument(format!(
                            "ShardFilter type {} requires Timestamp",
                            f.kind
                        ))
                    })?;
                    if f.kind == "AT_TIMESTAMP" {
                        ShardFilter::AtTimestamp(secs_to_ms(ts))
                    } else {
                        ShardFilter::FromTimestamp(secs_to_ms(ts))
                    }
                }
                other => {
                    return Err(validation(
                        "shardFilter.type",
                        other,
                        "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]",
                    ));
                }
            },
        };
        let all = handle.list_shards(&filter)?;
        let mut page: Vec<&ShardInfo> = all
            .iter()
            .filter(|s| after.is_none_or(|a| parse_shard_id(&s.shard_id).is_some_and(|i| i > a)))
            .collect();
        let has_more = page.len() > max as usize;
        page.truncate(max as usize);
        let mut out = json!({ "Shards": page.iter().map(|s| shard_json(s)).collect::<Vec<_>>() });
        if has_more {
            let token = ListShardsToken {
                stream: handle.name().to_owned(),
                created_ms: handle.created_ms(),
                after: page.last().and_then(|s| parse_shard_id(&s.shard_id)),
                filter: filter_req,
                issued_ms: now,
            };
            let token =
                serde_json::to_vec(&token).map_err(|e| ApiError::internal(e.to_string()))?;
            out["NextToken"] = json!(URL_SAFE_NO_PAD.encode(token));
        }
        to_body(out)
    }
}
