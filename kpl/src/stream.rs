//! A stream, by name or by ARN.

use std::fmt;

/// A stream, by name or by ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRef {
    /// The stream's name.
    Name(String),
    /// The stream's ARN.
    Arn(String),
}

impl StreamRef {
    /// A stream reference from text: an ARN if it starts with `arn:`, else a name.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("arn:") {
            StreamRef::Arn(text.to_owned())
        } else {
            StreamRef::Name(text.to_owned())
        }
    }

    pub(crate) fn apply_list(
        &self,
        b: aws_sdk_kinesis::operation::list_shards::builders::ListShardsFluentBuilder,
    ) -> aws_sdk_kinesis::operation::list_shards::builders::ListShardsFluentBuilder {
        match self {
            StreamRef::Name(n) => b.stream_name(n),
            StreamRef::Arn(a) => b.stream_arn(a),
        }
    }

    pub(crate) fn apply_put(
        &self,
        b: aws_sdk_kinesis::operation::put_records::builders::PutRecordsFluentBuilder,
    ) -> aws_sdk_kinesis::operation::put_records::builders::PutRecordsFluentBuilder {
        match self {
            StreamRef::Name(n) => b.stream_name(n),
            StreamRef::Arn(a) => b.stream_arn(a),
        }
    }
}

impl fmt::Display for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamRef::Name(n) | StreamRef::Arn(n) => f.write_str(n),
        }
    }
}
