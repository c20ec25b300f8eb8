//! Every `[OUTPUT]` key rustsink reads, defined once: its name, default and documentation.
//!
//! README.md's configuration reference is generated from this table
//! (`rustsink keys`), and a test fails when the two differ.

/// `sink`: where records go.
pub const SINK: &str = "sink";
/// `path`: the directory of `sink dir`.
pub const PATH: &str = "path";
/// `file_mode`: the mode of objects `sink dir` delivers.
pub const FILE_MODE: &str = "file_mode";
/// `bucket`: the S3 bucket of `sink s3`.
pub const BUCKET: &str = "bucket";
/// `region`: the bucket's AWS region.
pub const REGION: &str = "region";
/// `endpoint`: an S3-compatible server instead of AWS's.
pub const ENDPOINT: &str = "endpoint";
/// `tls_ca_file`: certificates to trust besides the system's.
pub const TLS_CA_FILE: &str = "tls_ca_file";
/// `s3_path_style`: bucket in the path instead of the host name.
pub const S3_PATH_STYLE: &str = "s3_path_style";
/// `upload_chunk_size`: the part size of multipart uploads.
pub const UPLOAD_CHUNK_SIZE: &str = "upload_chunk_size";
/// `content_type`: the Content-Type of objects.
pub const CONTENT_TYPE: &str = "content_type";
/// `storage_class`: the S3 storage class of objects.
pub const STORAGE_CLASS: &str = "storage_class";
/// `server_side_encryption`: AES256 or aws:kms.
pub const SERVER_SIDE_ENCRYPTION: &str = "server_side_encryption";
/// `sse_kms_key_id`: the KMS key of aws:kms encryption.
pub const SSE_KMS_KEY_ID: &str = "sse_kms_key_id";
/// `canned_acl`: the canned ACL of objects.
pub const CANNED_ACL: &str = "canned_acl";
/// `object_tags`: tags set on every object.
pub const OBJECT_TAGS: &str = "object_tags";
/// `checksum_algorithm`: the checksum sent with uploads.
pub const CHECKSUM_ALGORITHM: &str = "checksum_algorithm";
/// `s3_check_existing`: ask whether a key is taken before uploading to it.
pub const S3_CHECK_EXISTING: &str = "s3_check_existing";
/// `send_content_md5`: whether uploads carry Content-MD5.
pub const SEND_CONTENT_MD5: &str = "send_content_md5";
/// `profile`: the AWS shared-config profile of the base credentials.
pub const PROFILE: &str = "profile";
/// `format`: what objects hold.
pub const FORMAT: &str = "format";
/// `role_arn`: a role to assume for uploads; `role_arn.2`, `role_arn.3`, ... chain more.
pub const ROLE_ARN: &str = "role_arn";
/// `external_id`: the external id of `role_arn`; `external_id.N` of `role_arn.N`.
pub const EXTERNAL_ID: &str = "external_id";
/// `role_session_name`: the session name of assumed roles.
pub const ROLE_SESSION_NAME: &str = "role_session_name";
/// `role_session_duration`: how long an assumed-role session lasts.
pub const ROLE_SESSION_DURATION: &str = "role_session_duration";
/// `sts_endpoint`: an STS endpoint instead of the region's.
pub const STS_ENDPOINT: &str = "sts_endpoint";
/// `sts_region`: the region of STS.
pub const STS_REGION: &str = "sts_region";
/// `web_identity_token_file`: explicit IRSA: the token file.
pub const WEB_IDENTITY_TOKEN_FILE: &str = "web_identity_token_file";
/// `web_identity_role_arn`: explicit IRSA: the role.
pub const WEB_IDENTITY_ROLE_ARN: &str = "web_identity_role_arn";
/// `sink.allowed_hosts`: the hosts a sink component may send HTTP requests to.
pub const SINK_ALLOWED_HOSTS: &str = "sink.allowed_hosts";
/// `sink.memory_limit`: the memory cap of the sink component.
pub const SINK_MEMORY_LIMIT: &str = "sink.memory_limit";
/// `sink.timeout`: the deadline of one chunk in the sink component.
pub const SINK_TIMEOUT: &str = "sink.timeout";
/// `sink.<option>`: an option the sink component declares.
pub const SINK_OPTION: &str = "sink.<option>";
/// `filter.N`: a filter component; `filter.N.<option>` its options.
pub const FILTER: &str = "filter.N";
/// `filter.N.on_error`: what happens to a chunk a filter fails on.
pub const FILTER_ON_ERROR: &str = "filter.N.on_error";
/// `filter.N.memory_limit`: the memory cap of a filter instance.
pub const FILTER_MEMORY_LIMIT: &str = "filter.N.memory_limit";
/// `filter.N.timeout`: the deadline of one batch in a filter.
pub const FILTER_TIMEOUT: &str = "filter.N.timeout";
/// `filter.N.<option>`: an option the component declares.
pub const FILTER_OPTION: &str = "filter.N.<option>";
/// `json_date_key`: the key the event time is written under.
pub const JSON_DATE_KEY: &str = "json_date_key";
/// `json_date_format`: how the event time is written.
pub const JSON_DATE_FORMAT: &str = "json_date_format";
/// `log_key`: the one field of each record written.
pub const LOG_KEY: &str = "log_key";
/// `time_window`: the event-time window of an object.
pub const TIME_WINDOW: &str = "time_window";
/// `window_wait`: how long a window stays open for late records after it ends.
pub const WINDOW_WAIT: &str = "window_wait";
/// `upload_timeout`: the longest an object stays open.
pub const UPLOAD_TIMEOUT: &str = "upload_timeout";
/// `total_file_size`: the compressed size at which an object is cut.
pub const TOTAL_FILE_SIZE: &str = "total_file_size";
/// `compression`: gzip, zstd or none.
pub const COMPRESSION: &str = "compression";
/// `parquet.schema`: the file that declares the columns of Parquet objects.
pub const PARQUET_SCHEMA: &str = "parquet.schema";
/// `parquet.row_group_size`: the most bytes a row group of a Parquet object holds.
pub const PARQUET_ROW_GROUP_SIZE: &str = "parquet.row_group_size";
/// `compression_level`: the level of the `compression` codec.
pub const COMPRESSION_LEVEL: &str = "compression_level";
/// `metrics_listen`: the address of the Prometheus metrics endpoint.
pub const METRICS_LISTEN: &str = "metrics_listen";
/// `nice`: how many steps below Fluent Bit's the record thread runs.
pub const NICE: &str = "nice";
/// `max_open_objects`: how many objects may be open at once.
pub const MAX_OPEN_OBJECTS: &str = "max_open_objects";
/// `compression_threads`: how many threads compress (and encode) at once.
pub const COMPRESSION_THREADS: &str = "compression_threads";
/// `s3_key_format`: the key template.
pub const S3_KEY_FORMAT: &str = "s3_key_format";
/// `s3_key_format_tag_delimiters`: the characters `$TAG[n]` splits on.
pub const S3_KEY_FORMAT_TAG_DELIMITERS: &str = "s3_key_format_tag_delimiters";
/// `store_dir`: the journal and the objects not yet delivered.
pub const STORE_DIR: &str = "store_dir";
/// `store_dir_limit_size`: the most disk `store_dir` may use.
pub const STORE_DIR_LIMIT_SIZE: &str = "store_dir_limit_size";
/// `upload_retry_limit`: delivery attempts before an object is quarantined.
pub const UPLOAD_RETRY_LIMIT: &str = "upload_retry_limit";
/// `retry_exhausted_action`: what happens to an object after its last attempt.
pub const RETRY_EXHAUSTED_ACTION: &str = "retry_exhausted_action";
/// `upload_concurrency`: how many objects are delivered at once.
pub const UPLOAD_CONCURRENCY: &str = "upload_concurrency";
/// `shutdown_timeout`: how long exit may spend delivering.
pub const SHUTDOWN_TIMEOUT: &str = "shutdown_timeout";

/// The default `s3_key_format`: Hive-style partitions, and a file name that no other agent
/// and no other object of this agent can produce.
pub const DEFAULT_KEY_FORMAT: &str =
    "rustsink/$TAG/year=%Y/month=%m/day=%d/hour=%H/$HOSTNAME-$AGENT_ID-$INDEX.jsonl.gz";

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The name, as users write it (Fluent Bit matches keys case-insensitively).
    pub name: &'static str,
    /// The default, as users would write it; None when the key is required or optional
    /// without a default.
    pub default: Option<&'static str>,
    /// What the key does and which values it takes.
    pub doc: &'static str,
}

/// All keys, in the order the reference lists them.
pub const ALL: &[Key] = &[
    Key {
        name: SINK,
        default: Some("s3"),
        doc: "Where records go: `s3` uploads objects to `bucket`; `dir` writes them under \
              `path`; a path ending in `.wasm` names a sink component (built for \
              `rustsink:plugin@0.1.0` or `0.2.0`), which takes each chunk, after the \
              filters, in place of the object engine: its answer is Fluent Bit's \
              (delivered: FLB_OK; a retryable error, a trap, its timeout or its memory \
              limit: FLB_RETRY; any other error: FLB_ERROR).",
    },
    Key {
        name: SINK_ALLOWED_HOSTS,
        default: None,
        doc: "With a sink component: the hosts its HTTP requests (wasi-http) may go to, \
              separated by commas: `host` (any port) or `host:port`; IPv6 in brackets. \
              Checked on the host and port each request is sent to, never on a header; any \
              other request is refused and logged. Default: none.",
    },
    Key {
        name: SINK_MEMORY_LIMIT,
        default: Some("64M"),
        doc: "The most memory the sink component may use, from `1M` to `4G`.",
    },
    Key {
        name: SINK_TIMEOUT,
        default: Some("30s"),
        doc: "The longest the sink component may take over one chunk, from `10ms` to `300s`; \
              its HTTP requests time out with it.",
    },
    Key {
        name: SINK_OPTION,
        default: None,
        doc: "An option that the sink component declares (`rustsink describe <file.wasm>` \
              lists them).",
    },
    Key {
        name: PATH,
        default: None,
        doc: "With `sink dir`: the directory that receives the objects, each at `<path>/<key>`. \
              An object appears there complete or not at all (put under a temporary name, \
              synced, then linked to its name, which never replaces a file there). On the \
              filesystem of `store_dir`, the temporary name is a link to the store's file, so \
              no object is written twice; elsewhere it is a copy. No symbolic link under it is \
              followed. Created if missing. Required with `sink dir`.",
    },
    Key {
        name: FILE_MODE,
        default: Some("0640"),
        doc: "With `sink dir`: the mode of delivered objects, in octal. Folders under `path` \
              are created 0750. The owner must be able to read and write them.",
    },
    Key {
        name: BUCKET,
        default: None,
        doc: "With `sink s3`: the bucket objects are uploaded to, each at its key. Required \
              with `sink s3`.",
    },
    Key {
        name: REGION,
        default: None,
        doc: "The bucket's AWS region. Default: `AWS_REGION` or the AWS config of the \
              environment, else `us-east-1`.",
    },
    Key {
        name: ENDPOINT,
        default: None,
        doc: "The URL of an S3-compatible server (MinIO, Ceph, a local test server) instead \
              of AWS's endpoint for the region. Setting it turns `s3_path_style` on unless \
              that is set.",
    },
    Key {
        name: TLS_CA_FILE,
        default: None,
        doc: "A PEM file of CA certificates trusted besides the system's, for an `endpoint` \
              (or `sts_endpoint`) whose certificate a private CA signed. Certificates are \
              always verified: the AWS SDK cannot skip it. (Fluent Bit keeps its own `tls.*` \
              keys, such as `tls.ca_file` and `tls.verify`, to itself: they never reach \
              rustsink.)",
    },
    Key {
        name: S3_PATH_STYLE,
        default: None,
        doc: "`on`: address the bucket in the path (`https://host/bucket/key`), as most \
              S3-compatible servers need. Default: on with `endpoint`, off without.",
    },
    Key {
        name: UPLOAD_CHUNK_SIZE,
        default: Some("8M"),
        doc: "Objects larger than this are uploaded in parts of this size (multipart upload), \
              which resume after a restart from the last part stored; smaller ones in one \
              request. A part is sent while its object is still open, once more data follows \
              it. From `5M` (S3's smallest part) to `5G`.",
    },
    Key {
        name: CONTENT_TYPE,
        default: Some("application/x-ndjson"),
        doc: "The Content-Type of objects. With `compression gzip` the objects are gzip \
              files (the key ends in `.gz`), with `zstd` zstd files (`.zst`); no \
              Content-Encoding is set, so clients do not \
              unpack them on download.",
    },
    Key {
        name: STORAGE_CLASS,
        default: None,
        doc: "The S3 storage class, such as `STANDARD_IA` or `INTELLIGENT_TIERING`. Default: \
              the bucket's (`STANDARD`).",
    },
    Key {
        name: SERVER_SIDE_ENCRYPTION,
        default: None,
        doc: "`AES256` (SSE-S3) or `aws:kms` (SSE-KMS, with `sse_kms_key_id`). Default: the \
              bucket's default encryption.",
    },
    Key {
        name: SSE_KMS_KEY_ID,
        default: None,
        doc: "With `server_side_encryption aws:kms`: the KMS key id or ARN. Default: the \
              account's `aws/s3` key.",
    },
    Key {
        name: CANNED_ACL,
        default: None,
        doc: "A canned ACL for objects, such as `bucket-owner-full-control` (for a bucket in \
              another account that still uses ACLs).",
    },
    Key {
        name: OBJECT_TAGS,
        default: None,
        doc: "Tags set on every object, as `key=value` pairs separated by `&` (URL-encoded, as \
              S3's `x-amz-tagging` header takes them).",
    },
    Key {
        name: CHECKSUM_ALGORITHM,
        default: Some("none"),
        doc: "A checksum sent with every upload and checked by S3: `crc32`, `crc32c`, `sha1`, \
              `sha256`, or `none` (only what the request requires, which S3-compatible servers \
              accept).",
    },
    Key {
        name: S3_CHECK_EXISTING,
        default: Some("off"),
        doc: "`on`: ask S3 (HeadObject) whether a key holds an object before uploading to it. \
              Uploads always carry `If-None-Match: *`, which AWS S3, MinIO, Cloudflare R2, \
              Backblaze B2 and Google Cloud Storage honour, so that an object is never written \
              over; turn this on for a server that ignores the header. It costs a request or two \
              per object and needs `s3:GetObject`.",
    },
    Key {
        name: PROFILE,
        default: None,
        doc: "The profile of the AWS shared config and credentials files \
              (`~/.aws/config`, `~/.aws/credentials`, or `AWS_CONFIG_FILE` and \
              `AWS_SHARED_CREDENTIALS_FILE`) that gives the base credentials. Unset: \
              `AWS_PROFILE`, else `default`. With a profile, a web identity in the environment \
              (IRSA) is not used; `role_arn` hops start from the profile's credentials.",
    },
    Key {
        name: SEND_CONTENT_MD5,
        default: Some("off"),
        doc: "`on`: every PutObject and UploadPart carries the Content-MD5 of its body, which \
              buckets with Object Lock require (unless `checksum_algorithm` is set). Each body \
              is read twice: once for the digest, once to send it.",
    },
    Key {
        name: FILTER,
        default: None,
        doc: "A filter component (a `.wasm` file built for `rustsink:plugin@0.1.0` or \
              `0.2.0`), applied to every chunk before it is written: `filter.1` first, \
              then `filter.2`, and so on (up to 16, numbered without gaps). It runs \
              sandboxed: no files, network, environment or clock.",
    },
    Key {
        name: FILTER_ON_ERROR,
        default: Some("retry"),
        doc: "When the filter traps, runs past its timeout, hits its memory limit, returns \
              an error, or fails a record: `retry` hands the chunk back to Fluent Bit \
              (FLB_RETRY); `skip` passes the batch on unchanged; `drop` drops the batch with \
              an error line that counts its records; `skip_record` passes the records that \
              failed on unchanged and filters the others; `drop_record` drops the records \
              that failed, counted in an error line, and filters the others. With the \
              `_record` policies, a failure of the whole call is narrowed down to its \
              records by running the filter over halves of the batch, within 64 failed \
              calls and four times the filter's timeout per batch (records not told apart \
              by then count as failed). The instance is started afresh after a trap, a timeout or \
              the memory limit.",
    },
    Key {
        name: FILTER_MEMORY_LIMIT,
        default: Some("64M"),
        doc: "The most memory a filter instance may use, from `1M` to `4G`.",
    },
    Key {
        name: FILTER_TIMEOUT,
        default: Some("1s"),
        doc: "The longest a filter may take over one chunk, from `10ms` to `60s`.",
    },
    Key {
        name: FILTER_OPTION,
        default: None,
        doc: "An option that component N declares (`rustsink describe <file.wasm>` lists \
              them); a required one that is missing fails the start with the component's \
              name and the option.",
    },
    Key {
        name: ROLE_ARN,
        default: None,
        doc: "A role to assume (STS AssumeRole) with the base credentials: those of \
              `web_identity_*` if set, else the AWS default chain (environment, ECS task \
              role, EKS IRSA or Pod Identity, instance profile). Chain more roles with \
              `role_arn.2`, `role_arn.3`, ... (up to `.9`): each is assumed with the \
              credentials of the one before, and the last one uploads. Sessions are renewed \
              before they expire, and at once when S3 refuses them.",
    },
    Key {
        name: EXTERNAL_ID,
        default: None,
        doc: "The external id that the trust policy of `role_arn` requires; `external_id.2` \
              goes with `role_arn.2`, and so on.",
    },
    Key {
        name: ROLE_SESSION_NAME,
        default: None,
        doc: "The session name of every assumed role (IRSA from the environment's included), \
              as CloudTrail and the assumed-role ARN show it. Default: `rustsink-<hostname>`.",
    },
    Key {
        name: ROLE_SESSION_DURATION,
        default: Some("1h"),
        doc: "How long an assumed-role session lasts, from `15m` to `12h` (and at most the \
              role's maximum session duration; AWS allows chained roles at most `1h`).",
    },
    Key {
        name: STS_ENDPOINT,
        default: None,
        doc: "The URL of STS for assuming roles, and for IRSA, explicit or from the environment \
              (a VPC endpoint, or a local test server). Default: the regional STS endpoint of \
              `sts_region`.",
    },
    Key {
        name: STS_REGION,
        default: None,
        doc: "The region of STS. Default: `region`, else the environment's region.",
    },
    Key {
        name: WEB_IDENTITY_TOKEN_FILE,
        default: None,
        doc: "Explicit IRSA: a web identity token file (EKS mounts one and names it in \
              `AWS_WEB_IDENTITY_TOKEN_FILE`), exchanged for `web_identity_role_arn` with STS \
              AssumeRoleWithWebIdentity. The file is read again at every renewal, so rotated \
              tokens are used. Without these keys, IRSA still works from the environment.",
    },
    Key {
        name: WEB_IDENTITY_ROLE_ARN,
        default: None,
        doc: "Explicit IRSA: the role the token of `web_identity_token_file` is exchanged for.",
    },
    Key {
        name: JSON_DATE_KEY,
        default: Some("date"),
        doc: "The key under which each line carries the event time, first in the object, as \
              Fluent Bit's `out_s3` writes it. `off` or `false` leaves the time out.",
    },
    Key {
        name: JSON_DATE_FORMAT,
        default: Some("iso8601"),
        doc: "How the event time is written: `iso8601` (`2024-05-01T10:00:00.123456Z`), \
              `java_sql_timestamp` (`2024-05-01 10:00:00.123456`), `double` (seconds with \
              fraction), `epoch` (whole seconds) or `epoch_ms` (milliseconds).",
    },
    Key {
        name: FORMAT,
        default: Some("json_lines"),
        doc: "What objects hold: `json_lines`, one JSON object per record and line (the \
              format `out_s3` calls `json_lines`); or `parquet`, one Parquet file per object, \
              with a column per field and the event time as a timestamp column named by \
              `json_date_key` (see Parquet objects). Parquet objects wait in `store_dir` as \
              zstd JSON lines, `total_file_size` counts those, and they are written as Parquet \
              when they are delivered; the default key ends in `.parquet` and the default \
              `content_type` is `application/vnd.apache.parquet`.",
    },
    Key {
        name: PARQUET_SCHEMA,
        default: None,
        doc: "With `format parquet`: a JSON file that declares the columns, `{\"columns\": \
              [{\"name\": \"level\", \"type\": \"string\"}, ...]}`, with the types `string`, \
              `int64`, `float64`, `boolean`, `timestamp` and `json` (the value's JSON text). \
              Fields not declared are left out; a value that does not fit its column is written \
              as null and counted in a warning. Unset: each object's columns are found from its \
              records, and nothing is left out.",
    },
    Key {
        name: PARQUET_ROW_GROUP_SIZE,
        default: Some("8M"),
        doc: "With `format parquet`: the most bytes a row group holds, 1M to 1G. A row group \
              is held in memory while it is written, and the process's peak memory grows with \
              it (BENCHMARKS.md); on logs, larger row groups compress no better.",
    },
    Key {
        name: LOG_KEY,
        default: None,
        doc: "Write only this field of each record, one per line, as `out_s3` does: a string as \
              it is (raw text, not JSON), any other value as JSON; the time is not written. A \
              record without the field is written whole, as a JSON line, and counted in a \
              warning. Unset: whole records.",
    },
    Key {
        name: TIME_WINDOW,
        default: Some("1h"),
        doc: "The event-time window of an object, aligned to UTC midnight (`1h` windows start \
              on the hour, `15m` ones at :00, :15, :30 and :45): an object holds the records of \
              one tag and one window. It must divide a day (`7m` or `0` is refused). `off`: the \
              time of arrival decides, and the key's strftime uses the time the object opened.",
    },
    Key {
        name: WINDOW_WAIT,
        default: Some("10m"),
        doc: "How long after its window ends an object stays open for late records. A record \
              that arrives later still goes into a new object of its window; none is dropped.",
    },
    Key {
        name: UPLOAD_TIMEOUT,
        default: Some("1h"),
        doc: "The longest an object stays open before it is closed and delivered, whatever \
              its window.",
    },
    Key {
        name: TOTAL_FILE_SIZE,
        default: Some("100M"),
        doc: "The size at which an object is closed, counted in bytes as stored (after \
              compression). The cut happens between blocks of whole records, so an object can \
              exceed it by its last block: at most about 256 KiB of input (1 MiB with zstd).",
    },
    Key {
        name: COMPRESSION,
        default: Some("gzip"),
        doc: "`gzip`, `zstd` or `none`. With `format parquet`, the compression of the \
              Parquet pages: `zstd` (the default then), `snappy`, `gzip` or `none`. Gzip \
              objects read back with `gzip -d` and any gzip reader; zstd objects (one frame \
              per block of about 1 MiB, each with its checksum) with `zstd -d`, DuckDB and any \
              zstd reader, for about a third of gzip's CPU (BENCHMARKS.md).",
    },
    Key {
        name: COMPRESSION_LEVEL,
        default: None,
        doc: "The level of `compression`. Gzip: 1 (fastest) to 9 (smallest), libdeflate's \
              levels, default 5, which on JSON lines makes objects about as small as zlib's 6 \
              and smaller than out_s3's, for about a third less CPU. Zstd: 1 to 19, default \
              1, which on rustsink's frames of about 1 MiB compresses as well as 3 for about \
              half its CPU. With `format parquet`, the level of the pages' gzip or zstd. \
              Ignored with `compression none` and `snappy`.",
    },
    Key {
        name: COMPRESSION_THREADS,
        default: Some("0"),
        doc: "How many threads compress at the same time. Data is compressed in independent \
              blocks (about 256 KiB with gzip, 1 MiB with zstd), so one object uses them all, \
              as do several objects at once; chunks of concurrent flushes are also encoded at \
              once. `0`: one per CPU core with gzip, whose compression is most of a flush's \
              work; one with zstd and none (and Parquet, whose lines wait as zstd), where more \
              threads mostly compete with Fluent Bit's input for the cores.",
    },
    Key {
        name: NICE,
        default: Some("10"),
        doc: "How many steps below the Fluent Bit thread that starts it rustsink's record \
              thread runs, with the threads it compresses with: a Linux nice increment, from 0 \
              to 19. That thread filters, encodes and compresses every record. Where the \
              cores are short, Fluent Bit's input and engine then run first, and a flush that \
              waits for the record thread takes longer instead (BENCHMARKS.md). `0`: the same \
              priority. That is the default with filter or sink components, whose timeouts \
              count wall-clock time that a thread kept waiting would spend (set `nice` to \
              lower it anyway), and on Fluent Bit 1.9, whose `tail` reads from the page cache \
              as fast as a core allows: there a thread that gives way lets the input run \
              ahead, and Fluent Bit holds the difference in memory. Uploads keep Fluent Bit's \
              priority, so that they keep up. Nice values weigh threads within their cgroup: \
              in a container, only against the container's own.",
    },
    Key {
        name: MAX_OPEN_OBJECTS,
        default: Some("0"),
        doc: "The most objects open at once (one per tag and window being written). Each holds \
              a file descriptor and little memory (no compression state: each block is \
              compressed on its own). At the bound, the least recently written object is closed early and \
              delivered, and a later record of its tag and window opens a new object: no flush \
              is refused for it. `0`: a quarter of the descriptor limit (`ulimit -n`), from 8 to \
              8192.",
    },
    Key {
        name: S3_KEY_FORMAT,
        default: Some(DEFAULT_KEY_FORMAT),
        doc: "The key template: strftime of the window start (UTC), `$TAG`, `$TAG[n]`, \
              `$INDEX`, `$UUID`, `$HOSTNAME`, `$AGENT_ID` and `${ENV_VAR}` (see Object keys). \
              It must contain `$INDEX` or `$UUID`. The default ends in `.jsonl.zst` with \
              `compression zstd`, in `.jsonl` with `compression none`, and in `.parquet` \
              with `format parquet`.",
    },
    Key {
        name: S3_KEY_FORMAT_TAG_DELIMITERS,
        default: Some("."),
        doc: "The characters that split the tag into the parts `$TAG[0]`, `$TAG[1]`, ...",
    },
    Key {
        name: STORE_DIR,
        default: Some("/tmp/fluent-bit/rustsink"),
        doc: "Where the journal and the objects not yet delivered are kept, in a folder per \
              instance (its `Alias`, or `rustsink.N`). Put it on a persistent volume: what is \
              here survives a crash and is delivered on the next start.",
    },
    Key {
        name: STORE_DIR_LIMIT_SIZE,
        default: Some("0"),
        doc: "The most disk the instance's `store_dir` folder may use; `0` is no limit. At the \
              limit, flushes return RETRY (Fluent Bit keeps the data) until deliveries free \
              space; the log says so once.",
    },
    Key {
        name: UPLOAD_RETRY_LIMIT,
        default: Some("10"),
        doc: "Delivery attempts per object in a row, with exponential backoff (1 s doubling \
              to 60 s, with jitter), from 1 to 1000; `no_limits` never gives up. After the \
              last, `retry_exhausted_action` decides.",
    },
    Key {
        name: RETRY_EXHAUSTED_ACTION,
        default: Some("quarantine"),
        doc: "What happens to an object after its last attempt: `quarantine` moves it to \
              `quarantine/` in the instance's store folder, names its key in the log, and \
              tries it again at every start and every 30 minutes until it is delivered; \
              `delete` deletes it, with an error line that names it.",
    },
    Key {
        name: UPLOAD_CONCURRENCY,
        default: Some("4"),
        doc: "How many objects are delivered at the same time, each on a thread of its own, \
              so that one slow or failing object does not hold back the others. From 1 to \
              64.",
    },
    Key {
        name: SHUTDOWN_TIMEOUT,
        default: Some("5s"),
        doc: "On exit, how long rustsink spends closing and delivering objects. What is not \
              delivered by then stays in `store_dir` and is delivered on the next start. Keep \
              it below the time your orchestrator waits before it kills the process.",
    },
    Key {
        name: METRICS_LISTEN,
        default: None,
        doc: "An address and port (`127.0.0.1:2021`, `[::]:2021`) where rustsink serves its \
              metrics in the Prometheus text format, at `/metrics`: what waits in `store_dir` \
              and in quarantine, what was delivered, failures by cause, credential renewals, \
              component failures and flush answers, for every rustsink output of the process \
              (label `output`). Outputs that name the same address share it. Default: off.",
    },
];

/// Keys that Fluent Bit core consumes for every output: they never reach the plugin.
const FLUENT_BIT_KEYS: &[&str] = &[
    "name",
    "match",
    "match_regex",
    "alias",
    "retry_limit",
    "workers",
    "log_level",
    "log_suppress_interval",
    "host",
    "port",
    "tls",
];
const FLUENT_BIT_PREFIXES: &[&str] = &["tls.", "storage.", "net."];

/// Whether Fluent Bit itself takes `key` (`Match`, `Workers`, `tls.verify`, ...), so that
/// `output_get_property` never returns it.
pub fn consumed_by_fluent_bit(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    FLUENT_BIT_KEYS.contains(&key.as_str())
        || FLUENT_BIT_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Keys that also come numbered, for the hops of a role chain (`role_arn.2`).
const NUMBERED: &[&str] = &[ROLE_ARN, EXTERNAL_ID];

/// Finds a key by name, ignoring case as Fluent Bit does. A numbered key (`role_arn.2`)
/// finds its unnumbered one.
pub fn find(name: &str) -> Option<&'static Key> {
    if let Some(rest) = name
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("filter."))
        .map(|_| &name[7..])
    {
        let (n, option) = rest.split_once('.').unwrap_or((rest, ""));
        if n.parse::<u8>().is_ok_and(|n| n >= 1) {
            let generic = match option.to_ascii_lowercase().as_str() {
                "" => FILTER,
                "on_error" => FILTER_ON_ERROR,
                "memory_limit" => FILTER_MEMORY_LIMIT,
                "timeout" => FILTER_TIMEOUT,
                _ => FILTER_OPTION,
            };
            return ALL.iter().find(|key| key.name == generic);
        }
    }
    if let Some(option) = name
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("sink."))
        .map(|_| &name[5..])
    {
        let generic = match option.to_ascii_lowercase().as_str() {
            "allowed_hosts" => SINK_ALLOWED_HOSTS,
            "memory_limit" => SINK_MEMORY_LIMIT,
            "timeout" => SINK_TIMEOUT,
            _ => SINK_OPTION,
        };
        return ALL.iter().find(|key| key.name == generic);
    }
    let unnumbered = match name.rsplit_once('.') {
        Some((base, n))
            if n.parse::<u8>().is_ok_and(|n| n >= 2)
                && NUMBERED.iter().any(|k| k.eq_ignore_ascii_case(base)) =>
        {
            base
        }
        _ => name,
    };
    ALL.iter()
        .find(|key| key.name.eq_ignore_ascii_case(unnumbered))
}

/// The configuration reference as a Markdown table.
pub fn reference_markdown() -> String {
    let mut table = String::from("| key | default | description |\n|---|---|---|\n");
    for key in ALL {
        let default = key
            .default
            .map_or("(none)".to_owned(), |d| format!("`{d}`"));
        table.push_str(&format!("| `{}` | {default} | {} |\n", key.name, key.doc));
    }
    table
}
