// The config module's public face: load and validate a YAML file, format its issues, redact it, diff two of them.
export { configSchema, type Config, type LimitConfig, type KeyConfig, type UpstreamConfig, type RouteConfig, type CacheConfig, type RouteCacheConfig } from './schema.js'
export { parseConfig, loadConfigFile, DEFAULT_CONFIG_PATH, type ConfigResult } from './load.js'
export { formatIssue, formatPath, type ConfigIssue } from './issue.js'
export { redact, REDACTED } from './redact.js'
export { diffConfig, type ConfigDiff } from './diff.js'
export { parseDuration, parseSize, parseCount, parseRate, parseBackoff, type Rate, type Backoff, type UnitResult } from './units.js'
