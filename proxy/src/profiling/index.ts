// The profiler shared by the proxy and the services behind it.
export {
  labelSwitches,
  profilerSettingsFromConfig,
  profilingConfigSchema,
  profilingConfigShape,
} from './config.ts';
export type { ProfilerSettings, ProfilingConfig } from './config.ts';
export { disabledProfiler, startProfiler } from './profiler.ts';
export type {
  Profiler,
  ProfilerLogger,
  ProfilerState,
  ProfilerStatus,
  RequestLabelInput,
  StartProfilerOptions,
} from './profiler.ts';
