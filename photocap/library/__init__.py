"""The photo core: the only place that keeps files, index and metadata in step.

* ``scan``       walk roots (the one root, exclude and symlink rule), stat fingerprints, hashes
* ``photofile``  one photo without the model: probe, decode, completeness
* ``workers``    the decode worker processes (replaced in one place; they die with photocap)
* ``schedule``   bounded probe/decode work on the workers, with crash isolation
* ``decide``     what a probed file needs: kept, moved, copied, adopted, or the model
* ``pipeline``   scan -> caption -> index -> write; one FileOutcome per file + a summary
* ``sync``       captions into files + fingerprints, "write owed", whose words a caption is,
                 what is gone (missing, prune), symlinked roots, stale temp files
* ``edit``       a person's caption edits (GUI Save, ``photocap set-caption``/``clear-caption``)
* ``summary``    frozen summaries of a run and their one formatter each
* ``meaning``    which text of a photo its text vector embeds; embedding what the index owes
* ``search``     words, meaning, hybrid: the one rule for fusing rankings and for what counts
* ``watch``      watchdog events -> settle queue -> pipeline

Front ends (cli/, gui/) call these; nothing here imports a front end. Importing this
package imports nothing.
"""
