//! Stream lifecycle, descriptions, resharding, retention, tags and limits.

use super::*;

impl Api<'_> {
    pub(super) fn stream(
        &self,
        name: &Option<String>,
        arn: &Option<String>,
    ) -> Result<Arc<StreamHandle>, ApiError> {
        let name = match (name, arn) {
            (Some(name), arn) => {
                check_name("streamName", name)?;
                if let Some(arn) = arn
                    && self.core.name_from_arn(arn)? != *name
                {
                    return Err(ApiError::invalid_argument(
                        "StreamName and StreamARN name different streams",
                    ));
                }
                name.clone()
            }
            (None, Some(arn)) => self.core.name_from_arn(arn)?,
            (None, None) => {
                return Err(ApiError::invalid_argument(
                    "Either StreamName or StreamARN should be provided.",
                ));
            }
        };
        self.core.stream(&name)
    }

    pub(super) fn create_stream(&self, req: CreateStreamReq) -> Result<Vec<u8>, ApiError> {
        let name = required(req.stream_name, "streamName")?;
        check_name("streamName", &name)?;
        let mode = match req
            .stream_mode_details
            .as_ref()
            .map(|m| m.stream_mode.as_str())
        {
            None | Some("PROVISIONED") => StreamMode::Provisioned,
            Some("ON_DEMAND") => StreamMode::OnDemand,
            Some(other) => {
                return Err(validation(
                    "streamModeDetails.streamMode",
                    other,
                    "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]",
                ));
            }
        };
        let count = match req.shard_count {
            Some(n) => {
                check_range("shardCount", n, 1, i64::from(u32::MAX))?;
                Some(n as u32)
            }
            None => None,
        };
        self.core.create_stream(&name, count, mode)?;
        if let Some(tags) = req.tags {
            self.core.stream(&name)?.add_tags(tags)?;
        }
        Ok(b"{}".to_vec())
    }

    pub(super) fn delete_stream(&self, req: StreamReq) -> Result<Vec<u8>, ApiError> {
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        self.core.delete_stream(handle.name())?;
        Ok(b"{}".to_vec())
    }

    pub(super) fn describe_stream(&self, req: DescribeStreamReq) -> Result<Vec<u8>, ApiError> {
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        self.core.control(Control::DescribeStream)?;
        let limit = req.limit.unwrap_or(100);
        check_range("limit", limit, 1, 10_000)?;
        // Values above 100 are accepted, and at most 100 shards come back.
        let limit = limit.min(100);
        let after = match &req.exclusive_start_shard_id {
            Some(id) => Some(parse_shard_id(id).ok_or_else(|| {
                ApiError::not_found(format!(
                    "Shard {id} in stream {} does not exist",
                    handle.name()
                ))
            })?),
            None => None,
        };
        let summary = handle.summary();
        let all = handle.list_shards(&ShardFilter::All)?;
        let mut shards: Vec<&ShardInfo> = all
            .iter()
            .filter(|s| after.is_none_or(|a| parse_shard_id(&s.shard_id).is_some_and(|i| i > a)))
            .collect();
        let has_more = shards.len() > limit as usize;
        shards.truncate(limit as usize);
        to_body(json!({
            "StreamDescription": {
                "StreamName": summary.name,
                "StreamARN": summary.arn,
                "StreamStatus": summary.status.as_str(),
                "StreamModeDetails": { "StreamMode": summary.mode.as_str() },
                "Shards": shards.iter().map(|s| shard_json(s)).collect::<Vec<_>>(),
                "HasMoreShards": has_more,
                "RetentionPeriodHours": summary.retention_hours,
                "StreamCreationTimestamp": summary.created_ms as f64 / 1000.0,
                "EnhancedMonitoring": [{ "ShardLevelMetrics": [] }],
                "EncryptionType": "NONE",
            }
        }))
    }

    pub(super) fn describe_stream_summary(&self, req: StreamReq) -> Result<Vec<u8>, ApiError> {
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        self.core.control(Control::DescribeStreamSummary)?;
        let s = handle.summary();
        to_body(json!({
            "StreamDescriptionSummary": {
                "StreamName": s.name,
                "StreamARN": s.arn,
                "StreamStatus": s.status.as_str(),
                "StreamModeDetails": { "StreamMode": s.mode.as_str() },
                "RetentionPeriodHours": s.retention_hours,
                "StreamCreationTimestamp": s.created_ms as f64 / 1000.0,
                "EnhancedMonitoring": [{ "ShardLevelMetrics": [] }],
                "EncryptionType": "NONE",
                "OpenShardCount": s.open_shard_count,
                "ConsumerCount": 0,
            }
        }))
    }

    pub(super) fn split_shard(&self, req: SplitShardReq) -> Result<Vec<u8>, ApiError> {
        let shard = required(req.shard_to_split, "shardToSplit")?;
        let key = required(req.new_starting_hash_key, "newStartingHashKey")?;
        check_name("shardToSplit", &shard)?;
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        self.core.control(Control::Reshard)?;
        handle.split_shard(&shard, &key)?;
        Ok(b"{}".to_vec())
    }

    pub(super) fn merge_shards(&self, req: MergeShardsReq) -> Result<Vec<u8>, ApiError> {
        let a = required(req.shard_to_merge, "shardToMerge")?;
        let b = required(req.adjacent_shard_to_merge, "adjacentShardToMerge")?;
        check_name("shardToMerge", &a)?;
        check_name("adjacentShardToMerge", &b)?;
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        self.core.control(Control::Reshard)?;
        handle.merge_shards(&a, &b)?;
        Ok(b"{}".to_vec())
    }

    pub(super) fn update_shard_count(&self, req: UpdateShardCountReq) -> Result<Vec<u8>, ApiError> {
        let target = required(req.target_shard_count, "targetShardCount")?;
        check_range("targetShardCount", target, 1, 100_000)?;
        let scaling = required(req.scaling_type, "scalingType")?;
        if scaling != "UNIFORM_SCALING" {
            return Err(validation(
                "scalingType",
                &scaling,
                "Member must satisfy enum value set: [UNIFORM_SCALING]",
            ));
        }
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        self.core
            .control(Control::UpdateShardCount(handle.name()))?;
        let current = match handle.update_shard_count(target as u32) {
            Ok(current) => current,
            Err(e) => {
                self.core.unscaled(handle.name());
                return Err(e);
            }
        };
        if current == target as u32 {
            self.core.unscaled(handle.name());
        }
        to_body(json!({
            "StreamName": handle.name(),
            "StreamARN": handle.arn(),
            "CurrentShardCount": current,
            "TargetShardCount": target,
        }))
    }

    pub(super) fn retention(&self, req: RetentionReq, increase: bool) -> Result<Vec<u8>, ApiError> {
        let hours = required(req.retention_period_hours, "retentionPeriodHours")?;
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        let hours = u32::try_from(hours).map_err(|_| {
            ApiError::invalid_argument(format!("Retention period {hours} hours is out of range."))
        })?;
        handle.set_retention(hours, increase)?;
        Ok(b"{}".to_vec())
    }

    pub(super) fn add_tags(&self, req: AddTagsReq) -> Result<Vec<u8>, ApiError> {
        if req.tags.is_empty() || req.tags.len() > 10 {
            return Err(validation(
                "tags",
                &format!("{} tags", req.tags.len()),
                "Member must have length between 1 and 10",
            ));
        }
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        handle.add_tags(req.tags)?;
        Ok(b"{}".to_vec())
    }

    pub(super) fn remove_tags(&self, req: RemoveTagsReq) -> Result<Vec<u8>, ApiError> {
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        handle.remove_tags(&req.tag_keys);
        Ok(b"{}".to_vec())
    }

    pub(super) fn list_tags(&self, req: ListTagsReq) -> Result<Vec<u8>, ApiError> {
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        let limit = req.limit.unwrap_or(50);
        check_range("limit", limit, 1, 50)?;
        let tags = handle.tags();
        let mut page: Vec<_> = tags
            .iter()
            .filter(|(k, _)| {
                req.exclusive_start_tag_key
                    .as_ref()
                    .is_none_or(|s| k.as_str() > s.as_str())
            })
            .collect();
        let has_more = page.len() > limit as usize;
        page.truncate(limit as usize);
        to_body(json!({
            "Tags": page.iter().map(|(k, v)| json!({ "Key": k, "Value": v })).collect::<Vec<_>>(),
            "HasMoreTags": has_more,
        }))
    }

    pub(super) fn describe_limits(&self) -> Result<Vec<u8>, ApiError> {
        let open: usize = self
            .core
            .list_streams()
            .iter()
            .map(|s| s.open_shard_count)
            .sum();
        to_body(json!({
            "ShardLimit": self.core.config().max_shards_per_stream,
            "OpenShardCount": open,
            "OnDemandStreamCount": 0,
            "OnDemandStreamCountLimit": 50,
        }))
    }
}
