// Package pluginutil holds what the example plugins share besides their
// driver logic: the call log a test reads to see every call that reached
// a plugin (CallLog), the counter of time spent in driver methods that a
// benchmark subtracts from its own figures (HandlerTime), and serving on a
// unix socket until SIGTERM or SIGINT (Flags, ListenUnix, Serve).
//
// The examples serve their drivers both through the project's pluginsdk
// and, for the tests, through github.com/docker/go-plugins-helpers; the
// helpers here work with either.
package pluginutil
