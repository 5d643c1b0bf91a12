"""nbgrader 0.9 configuration for the course's autograded exercises.

solutions/NN_slug/NN_slug.ipynb is the source (answers + hidden tests); generate_assignment
writes exercises/NN_slug/NN_slug.ipynb.  The assignment name is the folder name.  Grading
folders (submitted/, autograded/, feedback/, gradebook.db) stay out of git (.gitignore).
"""

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.course_id = "channels-deep-dive"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
# {nbgrader_step}/{student_id}/{assignment_id}: for solutions/ and exercises/ there is no
# student level, so solutions/01_sockets_and_channels/ is assignment 01_sockets_and_channels.
c.CourseDirectory.directory_structure = "{nbgrader_step}/{student_id}/{assignment_id}"

# What a learner sees in place of a worked answer.
c.ClearSolutions.code_stub = {"python": 'raise NotImplementedError("write your answer here")'}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# zip_collect: the teacher names each collected file "<student_id>--<notebook>.ipynb",
# e.g. "alice--02_unreliable_connections.ipynb" (the pattern is matched on the full path).
c.FileNameCollectorPlugin.named_regexp = r".*/(?P<student_id>[^/]+?)--(?P<file_id>[^/]+)$"

# Test cells drive learner code through mini_server.testing.run_async, whose own timeouts
# (5-20 s per check, at most 50 s per cell) fire first, costing one question; this per-cell
# limit (nbgrader then interrupts the kernel and goes on) is the backstop for code outside.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
# Servers started in a test cell log while the cell runs; a slow iopub must not fail grading.
c.Execute.raise_on_iopub_timeout = False
c.Execute.extra_arguments = ["--HistoryManager.enabled=False"]
