"""Shape: records into the fixed Arrow schema of ImageLocalInfo.

``schema`` builds the schema from ``schemas/image_local_info.json``; ``records`` checks each
record (or quarantines it with the reason); ``batches`` turns rows into Arrow record
batches; ``sink`` takes the pages of one project to the lake's writer.
"""
