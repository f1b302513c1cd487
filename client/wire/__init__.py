"""The wire formats both sides speak, importable without httpx or the service.

``da``: the DA Web API's JSON request and response models (pydantic), every solver block with
its defaults and ranges, ``JobStatus`` with its pending and finished sets, the error envelope.
``compact``: SpinOut's msgpack transport (numpy arrays), its request and reply codecs.
"""
