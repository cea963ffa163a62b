"""Source: the HSS API, read completely. Everything that talks to the network is here.

``transport`` is the one aiohttp session and what its failures mean; ``proxies`` which proxy
the environment names; ``auth`` and ``signing`` the credentials on each request; ``client``
one page; ``decoding`` a page body into records; ``limiter`` the rate and cap in flight;
``retry`` the retry policy; ``fetcher`` the many pages of one project; ``paging`` the
offset arithmetic and the proof that a crawl is complete (pure, no I/O); ``discovery``
the projects a credential can read (IAM).
"""
