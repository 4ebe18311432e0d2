# The calls of the Batch/Run seed document, as written there; only the import changed
# (batchpy -> slurmbatch). tests/test_seed_batch.py runs it and checks what it prints.
import slurmbatch as batchpy

class example_run(batchpy.Run):
    """
    An example run class
    """
    def run(self,A=0,B=[1,2,3],operator=max):
        """
        An example computation function

        """

        print(self.parameters)

        res = {'val': self.parameters['A']*self.parameters['operator'](self.parameters['B'])}

        return res

batch = batchpy.Batch('example')

# Add single run
batch.add_run( example_run,{'A':10,'B':[3,2,4,3,8]})

# Add a full factorial design of runs
batch.add_factorial_runs( example_run,
                         {'A': [1,2,3,4,5],
                          'B': [[2,5,8],[1,9,6,3,9],[6,4,0,9,4,1]],
                          'operator': [min,max,sum,len]})

print('MARK parameters', batch.run[0].parameters )
print('MARK id', batch.run[0].id )
print('MARK index', batch.run[0].index )
print('MARK done', batch.run[0].done )
print('MARK result', batch.run[0].result )
print('MARK runtime', batch.run[0].runtime )

print('MARK filename', batch.run[0].filename )

runs = batch.get_runs_with(A__ge=3,B=[2,5,8],operator=max)
print('MARK ge_runs', [(r.parameters['A'], r.parameters['operator'].__name__) for r in runs])

batch()

res = batch.run[0].result
print('MARK res0', res)

runs = batch.get_runs_with(A__le=3,B=[2,5,8],operator=min)
res = [run.result['val'] for run in runs]
print('MARK le_vals', res)

batch.add_run( example_run,{'A':8,'operator':min})
print('MARK done_list', [run.done for run in batch.run])
batch()
print('MARK filename_after', batch.run[0].filename )
print('MARK runtime_after', batch.run[0].runtime )

ids = [run.id for run in batch.run]

del example_run
del batch

resultbatch = batchpy.Batch('example')
resultbatch.add_resultrun( ids )

res = resultbatch.run[0].result
print('MARK result_run', res)

resultbatch.save_ids()
del resultbatch

import numpy as np
ids = np.load('_res/example_ids.npy')
print('MARK ids', len(ids), ids.dtype)

resultbatch = batchpy.Batch('example')
resultbatch.add_resultrun( ids )

res = resultbatch.run[0].result
print('MARK result_run2', res)
