"""Where the time goes: per-kernel timings of a compiled function from its profiling build (the
same program with timers around each kernel, rendered from templates/c/_profile.j2).

    report = graphc.profile(f, x, y, repeat=20)   # or graphc.profiler.profile(...)
    print(report)                                  # the table
    report.to_json(); report.to_chrome_trace("trace.json")

    g = graphc.profiler.watch(f)   # every call of g timed (Theano's profile=True); g.report()

graphc.function(..., profile=True) watches that function (Theano's keyword); GRAPHC_PROFILE=1
watches every compiled function. Watched functions print their reports at exit."""
from .peak import Peak, machine_peak
from .report import KernelRow, Report
from .session import ProfileError, ProfiledFunction, profile
from .watch import install_from_environment, watch, watch_for_profile_keyword, watched

__all__ = ["profile", "watch", "watched", "Report", "KernelRow", "Peak", "machine_peak",
           "ProfiledFunction", "ProfileError", "install_from_environment",
           "watch_for_profile_keyword"]
