"""One thread, offline hub, generated data in a temporary cache (wsss_core.testing)."""
from wsss_core.testing import isolate_test_process

isolate_test_process('wsss_template_tests_')
