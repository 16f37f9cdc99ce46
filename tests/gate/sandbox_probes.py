"""What the sandbox tests run inside a container (the worker's and the served one alike)."""

#: Writes where model code might (each path: "written" or the error), then fills each folder
#: until the file system refuses (the error and the bytes written), removing what it wrote.
WRITES = r"""
import errno, json, os, sys
places, found = json.loads(sys.argv[1]), {}
for path in places["write"]:
    try:
        with open(path, "w") as stream:
            stream.write("x")
        found[path] = "written"
    except OSError as error:
        found[path] = errno.errorcode.get(error.errno, str(error.errno))
for folder in places["fill"]:
    path, written, block = os.path.join(folder, "dialsgate-fill"), 0, b"\0" * 2**20
    try:
        with open(path, "wb") as stream:
            while written < 2**31:
                written += stream.write(block)
                stream.flush()
        found[folder] = ["no error", written]
    except OSError as error:
        found[folder] = [errno.errorcode.get(error.errno, str(error.errno)), written]
    finally:
        if os.path.exists(path):
            os.remove(path)
print(json.dumps(found))
"""
