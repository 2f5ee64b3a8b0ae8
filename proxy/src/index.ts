// Public surface of @spanscope/proxy for other workspaces: the profile label scheme and the
// profiler. Only light modules are imported here (the profiler loads @datadog/pprof on start),
// never the proxy app itself.
export const PACKAGE_NAME = '@spanscope/proxy';

export {
  BAGGAGE_KEYS,
  BAGGAGE_PREFIX,
  COMPONENTS,
  DEFAULT_LABEL_SWITCHES,
  EMPTY_LABELS,
  LABEL_NAMES,
  LABEL_NAME_PATTERN,
  MAX_LABEL_VALUE_LENGTH,
  PROFILE_ID_ATTRIBUTE,
  SAMPLE_LABEL_NAMES,
  SERIES_LABEL_NAMES,
  assertLabelName,
  filterProfileLabels,
  isLabelName,
  isProfileLabels,
  labelAllowed,
  labelRecord,
  labelSchemeDescription,
  labelValue,
  mergeProfileLabels,
  profileLabels,
  sanitizeLabelValue,
} from './labels.ts';
export type {
  Component,
  LabelDescription,
  LabelName,
  LabelSchemeDescription,
  LabelSwitches,
  ProfileLabels,
  SampleLabelName,
  SeriesLabelName,
} from './labels.ts';
export { ConfigError, LabelError, SpanscopeError } from './errors.ts';
export type { SpanscopeErrorCode } from './errors.ts';
export * from './profiling/index.ts';
