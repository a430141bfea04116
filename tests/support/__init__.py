"""Helpers shared by every kind of test, each defined once here.

`waiting`: poll until something happened elsewhere (never a fixed sleep), and wait for the read
model to catch up. `publishing`: put events on the stream as the worker does. `processes`: start
and stop policyflow's own processes. `clock`: the date tests on the dev server take their year and
quarter from. `requirements`: skip for want of something, or fail under CI, which has it.
"""
