// One profile on its way from a profiler to Pyroscope or to the local store: what Pyroscope's
// `POST /ingest` carries (series name split into application name and tags, the time window,
// the sample rate, the spy name) plus the gzipped pprof body. The proxy's own profiler hands one
// over in-process; the backend's arrives over HTTP at the admin port's `/ingest`.

export interface ProfileUpload {
  /** The part of the series name before `{` (Pyroscope's `service_name`). */
  readonly applicationName: string;
  /** The series tags between `{` and `}`; names match `[A-Za-z_][A-Za-z0-9_.]*`. */
  readonly tags: Readonly<Record<string, string>>;
  readonly from: Date;
  readonly until: Date;
  /** Samples per second (`sampleRate`). */
  readonly sampleRate: number;
  /** `spyName`, e.g. `nodespy`. */
  readonly spyName: string;
  /** A gzipped pprof profile (`format=pprof`). */
  readonly body: Uint8Array;
}
