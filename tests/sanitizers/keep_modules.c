/* Preloaded by tests/run.sh --sanitize: dlclose() does nothing, so the Open MPI
 * components that MPI_Finalize unloads stay mapped, and LeakSanitizer (which runs
 * at exit) can name the library of what they allocated, which lsan.supp then
 * suppresses. Without it their leaks show as "<unknown module>" and cannot be told
 * apart from Tandem's. */
int dlclose(void* handle) {
  (void)handle;
  return 0;
}
