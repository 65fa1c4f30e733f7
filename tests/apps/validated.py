"""cases.application behind wsgiref's validator, which asserts PEP 3333 on both sides."""

from wsgiref.validate import validator

from cases import application as _inner

application = validator(_inner)
