/** Where the sync writes its log lines (the action passes @actions/core). */
export interface SyncLog {
  info(message: string): void
  warning(message: string): void
  debug(message: string): void
}

/** One entry of the sync manifest. */
export interface SyncFile {
  /** POSIX path relative to the sync root. */
  path: string
  /** lstat size; for a symlink, the length of its target. */
  size: number
  kind: 'file' | 'symlink'
  /** lstat permission bits (the archive keeps only "executable or not"). */
  mode: number
  linkTarget?: string
  /** lstat mtime; the archive stores it so tools that compare times work. */
  mtimeMs?: number
}

export interface FileList {
  /** Absolute host directory the paths are relative to. */
  root: string
  /** Sorted by the UTF-8 bytes of `path`. */
  files: SyncFile[]
  /** Sum of the lstat sizes of `files`. */
  bytes: number
  /**
   * Tracked files kept although an ambiguous built-in exclude matched them,
   * each as `<path> (<pattern>)`.
   */
  protectedTracked: string[]
  /**
   * Paths left out because their name or symlink target is not valid UTF-8
   * (shown with replacement characters).
   */
  skipped?: string[]
}
