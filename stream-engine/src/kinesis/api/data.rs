//! The data plane: validating and putting records, iterators and reads.

use super::*;

impl Api<'_> {
    /// Validates one record and appends its partition key and decoded data to `buf`.
    /// `index` is the record's position in a `PutRecords` call (for error messages only).
    pub(super) fn prepare(
        &self,
        index: Option<usize>,
        data: Option<&str>,
        partition_key: Option<&str>,
        explicit_hash_key: Option<&str>,
        buf: &mut Vec<u8>,
    ) -> Result<(u128, usize), ApiError> {
        // Built only when an error needs it: this runs for every record.
        let field = |name: &str| match index {
            Some(i) => format!("records.{}.member.{name}", i + 1),
            None => name.to_owned(),
        };
        let data = data.ok_or_else(|| null_member(&field("data")))?;
        let pk = partition_key.ok_or_else(|| null_member(&field("partitionKey")))?;
        let chars = pk.chars().count();
        if !(1..=MAX_PARTITION_KEY_CHARS).contains(&chars) {
            return Err(validation(
                &field("partitionKey"),
                pk,
                "Member must have length between 1 and 256",
            ));
        }
        let hash_key = match explicit_hash_key {
            Some(ehk) => {
                let digits_ok = !ehk.is_empty()
                    && ehk.len() <= 39
                    && ehk.bytes().all(|b| b.is_ascii_digit())
                    && (ehk == "0" || !ehk.starts_with('0'));
                if !digits_ok {
                    return Err(validation(
                        &field("explicitHashKey"),
                        ehk,
                        "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})",
                    ));
                }
                shared_proto::parse_hash_key(ehk).map_err(|_| {
                    ApiError::invalid_argument(format!(
                        "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {ehk}"
                    ))
                })?
            }
            None => shared_proto::partition_key_hash(pk),
        };
        let start = buf.len();
        buf.extend_from_slice(pk.as_bytes());
        BASE64.decode_vec(data, buf).map_err(|e| {
            ApiError::serialization(format!("Invalid base64 in {}: {e}", field("data")))
        })?;
        let data_len = buf.len() - start - pk.len();
        if data_len > MAX_RECORD_SIZE {
            return Err(validation(
                &field("data"),
                "<blob>",
                "Member must have length less than or equal to 1048576",
            ));
        }
        if data_len + pk.len() > MAX_RECORD_SIZE {
            return Err(ApiError::invalid_argument(format!(
                "Record size {} (data + partition key) exceeds the limit of 1 MiB.",
                data_len + pk.len()
            )));
        }
        Ok((hash_key, pk.len()))
    }

    pub(super) fn put(
        &self,
        handle: &StreamHandle,
        op: &str,
        inputs: Vec<PutInput>,
    ) -> Result<Vec<PutOutcome>, ApiError> {
        self.faults.with_shard_rules(SERVICE, op, |rules| {
            // (shard, throttle?, rule id) of the rules that concern this stream's shards.
            let faults: Vec<(u64, bool, u64)> = rules
                .iter()
                .filter_map(|f| {
                    let index = handle.shard_index(&f.shard_id).ok()?;
                    match f.kind {
                        FaultKind::Throttle => Some((index, true, f.id)),
                        FaultKind::InternalError | FaultKind::Error { .. } => {
                            Some((index, false, f.id))
                        }
                        _ => None,
                    }
                })
                .collect();
            let applied: Vec<(u64, bool)> = faults.iter().map(|&(s, t, _)| (s, t)).collect();
            let outcomes = match handle.put(inputs, &applied) {
                Ok(o) => o,
                Err(e) => return (Err(e), Vec::new()),
            };
            let hit = faults
                .iter()
                .filter(|(shard, _, _)| {
                    outcomes.iter().any(|o| {
                        matches!(o, PutOutcome::Throttled { shard: s } | PutOutcome::Failed { shard: s } if s == shard)
                    })
                })
                .map(|&(_, _, id)| id)
                .collect();
            (Ok(outcomes), hit)
        })
    }

    pub(super) fn put_record(&self, req: PutRecordReq<'_>) -> Result<Vec<u8>, ApiError> {
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        let mut buf = Vec::new();
        let (hash_key, pk_len) = self.prepare(
            None,
            req.data.as_deref(),
            req.partition_key.as_deref(),
            req.explicit_hash_key.as_deref(),
            &mut buf,
        )?;
        let input = PutInput::new(hash_key, Bytes::from(buf), pk_len as u16);
        let outcome = self.put(&handle, "PutRecord", vec![input])?;
        match outcome.first() {
            Some(PutOutcome::Stored { shard, pos }) => to_body(json!({
                "ShardId": shared_proto::limits::shard_id(*shard),
                "SequenceNumber": handle.sequence_number(*shard, *pos),
                "EncryptionType": "NONE",
            })),
            Some(PutOutcome::Throttled { shard }) => Err(ApiError::throughput_exceeded(
                handle.put_throttled_message(*shard),
            )),
            _ => Err(ApiError::internal("Internal service failure.")),
        }
    }

    pub(super) fn put_records(&self, req: PutRecordsReq<'_>) -> Result<Vec<u8>, ApiError> {
        let count = req.records.len();
        if count == 0 || count > MAX_PUT_RECORDS_COUNT {
            return Err(validation(
                "records",
                &format!("{count} records"),
                "Member must have length less than or equal to 500 and greater than or equal to 1",
            ));
        }
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        let mut buf = Vec::with_capacity(
            req.records
                .iter()
                .map(|r| r.data.as_ref().map_or(0, |d| d.len() * 3 / 4) + 32)
                .sum(),
        );
        let mut spans = Vec::with_capacity(count);
        for (i, r) in req.records.iter().enumerate() {
            let start = buf.len();
            let (hash_key, pk_len) = self.prepare(
                Some(i),
                r.data.as_deref(),
                r.partition_key.as_deref(),
                r.explicit_hash_key.as_deref(),
                &mut buf,
            )?;
            spans.push((hash_key, start, buf.len(), pk_len));
        }
        if buf.len() > MAX_PUT_RECORDS_SIZE {
            return Err(ApiError::invalid_argument(format!(
                "Records size {} exceeds the 5 MiB limit of a PutRecords request.",
                buf.len()
            )));
        }
        let buf = Bytes::from(buf);
        let inputs = spans
            .into_iter()
            .map(|(h, s, e, pk)| PutInput::new(h, buf.slice(s..e), pk as u16))
            .collect();
        let outcomes = self.put(&handle, "PutRecords", inputs)?;
        let failed = outcomes
            .iter()
            .filter(|o| !matches!(o, PutOutcome::Stored { .. }))
            .count();
        let mut out = String::with_capacity(40 + outcomes.len() * 110);
        let _ = write!(
            out,
            "{{\"FailedRecordCount\":{failed},\"EncryptionType\":\"NONE\",\"Records\":["
        );
        for (i, o) in outcomes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match o {
                PutOutcome::Stored { shard, pos } => {
                    let _ = write!(
                        out,
                        "{{\"ShardId\":\"{}\",\"SequenceNumber\":\"{}\"}}",
                        shared_proto::limits::shard_id(*shard),
                        handle.sequence_number(*shard, *pos)
                    );
                }
                PutOutcome::Throttled { shard } => {
                    let _ = write!(
                        out,
                        "{{\"ErrorCode\":\"ProvisionedThroughputExceededException\",\"ErrorMessage\":{}}}",
                        Value::from(handle.put_throttled_message(*shard))
                    );
                }
                PutOutcome::Failed { .. } => {
                    out.push_str("{\"ErrorCode\":\"InternalFailure\",\"ErrorMessage\":\"Internal service failure.\"}");
                }
            }
        }
        out.push_str("]}");
        Ok(out.into_bytes())
    }

    pub(super) fn get_shard_iterator(&self, req: GetShardIteratorReq) -> Result<Vec<u8>, ApiError> {
        let shard_id = required(req.shard_id, "shardId")?;
        check_name("shardId", &shard_id)?;
        let kind = required(req.shard_iterator_type, "shardIteratorType")?;
        let handle = self.stream(&req.stream_name, &req.stream_arn)?;
        let start = iterator_start(&kind, req.starting_sequence_number, req.timestamp)?;
        self.shard_fault("GetShardIterator", &shard_id)?;
        self.core
            .control(Control::GetShardIterator(handle.name(), &shard_id))?;
        let (shard, pos) = handle.iterator_position(&shard_id, &start)?;
        to_body(json!({ "ShardIterator": handle.iterator(shard, pos) }))
    }

    pub(super) fn shard_fault(&self, op: &str, shard_id: &str) -> Result<(), ApiError> {
        if let Some(kind) = self.faults.take_scoped(SERVICE, op, Some(shard_id))
            && let Some(err) = kind.to_error(op)
        {
            return Err(err);
        }
        Ok(())
    }

    pub(super) fn get_records(&self, req: GetRecordsReq) -> Result<Vec<u8>, ApiError> {
        let iterator = required(req.shard_iterator, "shardIterator")?;
        if iterator.is_empty() || iterator.len() > 512 {
            return Err(validation(
                "shardIterator",
                &iterator,
                "Member must have length between 1 and 512",
            ));
        }
        let limit = req.limit.unwrap_or(10_000);
        check_range("limit", limit, 1, 10_000)?;
        let (handle, shard, pos) = self.core.resolve_iterator(&iterator)?;
        self.shard_fault("GetRecords", &shared_proto::limits::shard_id(shard))?;
        let out = handle.get_records(shard, pos, limit as usize)?;
        let mut body = String::with_capacity(
            128 + out
                .records
                .iter()
                .map(|(_, r)| r.data().len() * 4 / 3 + 160)
                .sum::<usize>(),
        );
        body.push_str("{\"Records\":");
        write_records(&mut body, &handle, out.shard, &out.records);
        let _ = write!(body, ",\"MillisBehindLatest\":{}", out.millis_behind_latest);
        if let Some(next) = out.next_pos {
            let _ = write!(
                body,
                ",\"NextShardIterator\":\"{}\"",
                handle.iterator(out.shard, next)
            );
        }
        if let Some(children) = &out.child_shards {
            let children: Vec<Value> = children.iter().map(child_json).collect();
            let _ = write!(body, ",\"ChildShards\":{}", Value::from(children));
        }
        body.push('}');
        Ok(body.into_bytes())
    }
}

/// The start of an iterator (or a subscription) of type `kind`.
pub(super) fn iterator_start(
    kind: &str,
    starting_sequence_number: Option<String>,
    timestamp: Option<f64>,
) -> Result<IteratorStart, ApiError> {
    Ok(match kind {
        "TRIM_HORIZON" => IteratorStart::TrimHorizon,
        "LATEST" => IteratorStart::Latest,
        "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER" => {
            let seq = starting_sequence_number.ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "StartingSequenceNumber is required for ShardIteratorType {kind}"
                ))
            })?;
            if kind == "AT_SEQUENCE_NUMBER" {
                IteratorStart::AtSequenceNumber(seq)
            } else {
                IteratorStart::AfterSequenceNumber(seq)
            }
        }
        "AT_TIMESTAMP" => IteratorStart::AtTimestamp(secs_to_ms(timestamp.ok_or_else(|| {
            ApiError::invalid_argument("Timestamp is required for ShardIteratorType AT_TIMESTAMP")
        })?)),
        other => {
            return Err(validation(
                "shardIteratorType",
                other,
                "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]",
            ));
        }
    })
}

/// Appends the JSON array of `records` of `shard` (as `GetRecords` and subscription events
/// show them) to `body`.
pub(super) fn write_records(
    body: &mut String,
    handle: &StreamHandle,
    shard: u64,
    records: &[(u64, crate::kinesis::model::Record)],
) {
    body.push('[');
    for (i, (pos, r)) in records.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            "{{\"SequenceNumber\":\"{}\",\"ApproximateArrivalTimestamp\":{},\"PartitionKey\":{},\"Data\":\"",
            handle.sequence_number(shard, *pos),
            epoch_secs(r.arrival_ms()),
            Value::from(r.partition_key())
        );
        BASE64_OUT.encode_string(r.data(), body);
        body.push_str("\"}");
    }
    body.push(']');
}
